"""Idempotency-Key: a repeated request gets the first one's response instead of a new order.

A key is claimed in Postgres before the request runs, so that of concurrent repeats only
one runs; its response is stored when it succeeds. A request that fails gives the key
back, so that a client can retry a 4xx or 503 under the same key.
"""

from __future__ import annotations

import attrs

from order_engine.store import OrderStore

KEY_TTL_S = 24 * 3600.0
# Far longer than any request takes: a key still running after this was held by a
# process that died mid-request, and may be claimed again.
STALE_AFTER_S = 60.0


class KeyReused(Exception):
    """The key was used for a request with a different method, path or body."""


class KeyInProgress(Exception):
    """The first request with this key has not finished yet."""


@attrs.frozen
class StoredResponse:
    status: int
    body: str
    """The JSON body as first sent, replayed byte for byte."""


class IdempotencyService:
    def __init__(self, store: OrderStore) -> None:
        self._store = store

    async def begin(self, key: str, fingerprint: str) -> StoredResponse | None:
        """None if this request holds the key now and must run; else the first response.

        Raises KeyReused or KeyInProgress.
        """
        # Twice at most: a key given back between the claim and the read is claimed again.
        for _ in range(2):
            if await self._store.claim_idempotency_key(
                key, fingerprint, ttl_s=KEY_TTL_S, stale_after_s=STALE_AFTER_S
            ):
                return None
            record = await self._store.get_idempotency_key(key)
            if record is None:
                continue
            if record.fingerprint != fingerprint:
                raise KeyReused
            if not record.done:
                raise KeyInProgress
            assert record.response_status is not None
            assert record.response_body is not None
            return StoredResponse(record.response_status, record.response_body)
        raise KeyInProgress

    async def finish(self, key: str, fingerprint: str, status: int, body: str) -> None:
        await self._store.finish_idempotency_key(key, fingerprint, status, body)

    async def release(self, key: str, fingerprint: str) -> None:
        await self._store.release_idempotency_key(key, fingerprint)
