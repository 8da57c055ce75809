"""Submission limits: per wallet and for the whole service, in fixed windows kept in Redis.

Redis, so that every process counts against the same limit. A window's counter expires
with it. When Redis does not answer, orders are let through: creating an order needs
only Postgres, and a limiter must not turn a Redis outage into refused orders.

Each limit that is configured is announced on the order POSTs' answers, refused or not,
in the IETF `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-
headers): `"wallet";q=60;w=60` is 60 submissions a 60-second window, `"wallet";r=12;t=41`
is 12 left for the 41 seconds the window still lasts.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from order_engine.domain.errors import Quota, RateLimited

log = logging.getLogger(__name__)

WALLET_WINDOW_S = 60
GLOBAL_WINDOW_S = 1


class SubmissionLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        per_wallet_per_minute: int,
        global_per_second: int,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._per_wallet = per_wallet_per_minute
        self._global = global_per_second

    async def _count(self, key: str, window_s: int, now: float) -> tuple[int, int]:
        """This submission's number in its window, and the seconds left in the window."""
        window = int(now // window_s)
        full_key = f"{self._prefix}ratelimit:{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(full_key)
            pipe.expire(full_key, window_s + 1)
            count, _ = await pipe.execute()
        left = max(1, int((window + 1) * window_s - now + 0.999))
        return int(count), left

    async def check(self, wallet: str) -> tuple[Quota, ...]:
        """Count one submission of `wallet`: how each configured limit stands after it, or
        RateLimited (with the same) if it is over one."""
        now = time.time()
        quotas: list[Quota] = []
        try:
            for policy, key, limit, window_s, refusal in (
                (
                    "global",
                    "global",
                    self._global,
                    GLOBAL_WINDOW_S,
                    f"the service takes at most {self._global} orders a second",
                ),
                (
                    "wallet",
                    f"wallet:{wallet}",
                    self._per_wallet,
                    WALLET_WINDOW_S,
                    f"wallet {wallet} may submit at most {self._per_wallet} orders a minute",
                ),
            ):
                if not limit:
                    continue
                count, left = await self._count(key, window_s, now)
                quotas.append(Quota(policy, limit, window_s, max(limit - count, 0), left))
                if count > limit:
                    raise RateLimited(refusal, left, tuple(quotas))
        except (RedisError, OSError) as exc:
            log.warning("rate limit not checked, Redis does not answer: %s", exc)
            return ()
        return tuple(quotas)


def ratelimit_headers(quotas: tuple[Quota, ...]) -> dict[str, str]:
    """`RateLimit-Policy` and `RateLimit` for the limits in `quotas`; none without any."""
    if not quotas:
        return {}
    return {
        "RateLimit-Policy": ", ".join(f'"{q.policy}";q={q.limit};w={q.window_s}' for q in quotas),
        "RateLimit": ", ".join(f'"{q.policy}";r={q.remaining};t={q.reset_s}' for q in quotas),
    }
