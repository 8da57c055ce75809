"""Idempotency-Key: a repeated request gets the first one's response instead of a new order.

A key is claimed in Postgres before the request runs, so that of concurrent repeats only
one runs; its response is stored when it succeeds. A request that fails gives the key
back, so that a client can retry a 4xx or 503 under the same key. Expired keys are
deleted in batches by a periodic purge that every process may run at once: each batch
skips the rows another purge or a request holds.
"""

from __future__ import annotations

import asyncpg
import attrs

from order_engine.domain.errors import KeyInProgress, KeyReused

KEY_TTL_S = 24 * 3600.0
# Far longer than any request takes: a key still running after this was held by a
# process that died mid-request, and may be claimed again.
STALE_AFTER_S = 60.0
ACQUIRE_TIMEOUT_S = 5.0

# A key is claimed when it is new, expired, or held by a request that has been running
# far longer than any request takes (its process died before finishing it).
_CLAIM_IDEMPOTENCY_KEY = """
INSERT INTO idempotency_keys (key, fingerprint, state, created_at, expires_at)
VALUES ($1, $2, 'running', now(), now() + $3 * interval '1 second')
ON CONFLICT (key) DO UPDATE SET
    fingerprint = EXCLUDED.fingerprint,
    state = 'running',
    response_status = NULL,
    response_body = NULL,
    created_at = EXCLUDED.created_at,
    expires_at = EXCLUDED.expires_at
WHERE idempotency_keys.expires_at <= now()
   OR (idempotency_keys.state = 'running'
       AND idempotency_keys.created_at < now() - $4 * interval '1 second')
RETURNING key
"""

_GET_IDEMPOTENCY_KEY = """
SELECT fingerprint, state, response_status, response_body FROM idempotency_keys
WHERE key = $1 AND expires_at > now()
"""

_FINISH_IDEMPOTENCY_KEY = """
UPDATE idempotency_keys SET state = 'done', response_status = $3, response_body = $4
WHERE key = $1 AND fingerprint = $2 AND state = 'running'
"""

_RELEASE_IDEMPOTENCY_KEY = """
DELETE FROM idempotency_keys WHERE key = $1 AND fingerprint = $2 AND state = 'running'
"""


_PURGE_EXPIRED_KEYS = """
DELETE FROM idempotency_keys WHERE key IN (
    SELECT key FROM idempotency_keys WHERE expires_at <= now()
    ORDER BY expires_at LIMIT $1
    FOR UPDATE SKIP LOCKED
)
"""
PURGE_BATCH = 1000


@attrs.frozen
class StoredResponse:
    status: int
    body: str
    """The JSON body as first sent, replayed byte for byte."""


class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def begin(self, key: str, fingerprint: str) -> StoredResponse | None:
        """None if this request holds the key now and must run; else the first response.

        Raises KeyReused or KeyInProgress.
        """
        # Twice at most: a key given back between the claim and the read is claimed again.
        for _ in range(2):
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                claimed = await conn.fetchval(
                    _CLAIM_IDEMPOTENCY_KEY, key, fingerprint, KEY_TTL_S, STALE_AFTER_S
                )
                if claimed is not None:
                    return None
                row = await conn.fetchrow(_GET_IDEMPOTENCY_KEY, key)
            if row is None:
                continue
            if row["fingerprint"] != fingerprint:
                raise KeyReused(key)
            if row["state"] != "done":
                raise KeyInProgress(key)
            return StoredResponse(row["response_status"], row["response_body"])
        raise KeyInProgress(key)

    async def finish(self, key: str, fingerprint: str, status: int, body: str) -> None:
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(_FINISH_IDEMPOTENCY_KEY, key, fingerprint, status, body)

    async def release(self, key: str, fingerprint: str) -> None:
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            await conn.execute(_RELEASE_IDEMPOTENCY_KEY, key, fingerprint)

    async def purge_expired(self, *, batch: int = PURGE_BATCH) -> int:
        """Delete expired keys, a batch a statement so that no lock is held long; returns
        how many went."""
        purged = 0
        while True:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                status = await conn.execute(_PURGE_EXPIRED_KEYS, batch)
            deleted = int(status.split()[-1])
            purged += deleted
            if deleted < batch:
                return purged
