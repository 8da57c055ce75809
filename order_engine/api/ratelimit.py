"""Submission limits: per wallet and for the whole service, in fixed windows kept in Redis.

Redis, so that every process counts against the same limit. A window's counter expires
with it. When Redis does not answer, orders are let through: creating an order needs
only Postgres, and a limiter must not turn a Redis outage into refused orders.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from order_engine.domain.errors import RateLimited

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

    async def check(self, wallet: str) -> None:
        """Count one submission of `wallet`; RateLimited if it is over a limit."""
        now = time.time()
        try:
            if self._global:
                count, left = await self._count("global", GLOBAL_WINDOW_S, now)
                if count > self._global:
                    raise RateLimited(
                        f"the service takes at most {self._global} orders a second", left
                    )
            if self._per_wallet:
                count, left = await self._count(f"wallet:{wallet}", WALLET_WINDOW_S, now)
                if count > self._per_wallet:
                    raise RateLimited(
                        f"wallet {wallet} may submit at most {self._per_wallet} orders a minute",
                        left,
                    )
        except (RedisError, OSError) as exc:
            log.warning("rate limit not checked, Redis does not answer: %s", exc)
