"""Postgres session advisory locks: one per order being executed.

They are held on one connection of their own, kept open for the life of the process:
a pooled connection runs `pg_advisory_unlock_all()` when it goes back to the pool, so a
session lock taken on one would vanish under the worker. If this process dies, Postgres
drops the connection and every lock on it, and another process can take the orders over.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg

from order_engine.batch import Batcher

log = logging.getLogger(__name__)


_TRY_LOCKS = """
SELECT key, pg_try_advisory_lock(key) AS locked FROM unnest($1::bigint[]) AS key
"""
_UNLOCKS = "SELECT pg_advisory_unlock(key) FROM unnest($1::bigint[]) AS key"


def order_lock_key(order_id: uuid.UUID) -> int:
    """A bigint per order; two orders sharing one only run one after the other."""
    return int.from_bytes(order_id.bytes[:8], "big", signed=True)


class AdvisoryLocks:
    def __init__(self, dsn: str, *, timeout_s: float) -> None:
        self._dsn = dsn
        self._timeout_s = timeout_s
        self._conn: asyncpg.Connection | None = None
        # One query at a time on the connection; the locks and unlocks asked for in one
        # turn of the loop share one query.
        self._mutex = asyncio.Lock()
        self._locks: Batcher[uuid.UUID, bool] = Batcher(self._lock_batch, key=order_lock_key)
        self._unlocks: Batcher[uuid.UUID, None] = Batcher(self._unlock_batch, key=order_lock_key)
        # Session locks are re-entrant: two deliveries in this process would both get
        # the Postgres lock, so this process also keeps its own set.
        self._orders: set[uuid.UUID] = set()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            if self._conn is not None:
                log.warning("advisory lock connection lost: %d order locks gone", len(self._orders))
            self._conn = await asyncpg.connect(
                self._dsn, timeout=self._timeout_s, command_timeout=self._timeout_s
            )
        return self._conn

    async def try_lock_order(self, order_id: uuid.UUID) -> bool:
        """True if this caller now holds the order; False if anyone, here or in another
        process, already does."""
        return await self._locks(order_id)

    async def _lock_batch(self, order_ids: list[uuid.UUID]) -> list[bool]:
        async with self._mutex:
            wanted = [o for o in order_ids if o not in self._orders]
            locked: set[uuid.UUID] = set()
            if wanted:
                conn = await self._connection()
                rows = await conn.fetch(_TRY_LOCKS, [order_lock_key(o) for o in wanted])
                taken = {r["key"] for r in rows if r["locked"]}
                locked = {o for o in wanted if order_lock_key(o) in taken}
                self._orders |= locked
            return [o in locked for o in order_ids]

    async def unlock_order(self, order_id: uuid.UUID) -> None:
        await self._unlocks(order_id)

    async def _unlock_batch(self, order_ids: list[uuid.UUID]) -> list[None]:
        async with self._mutex:
            self._orders.difference_update(order_ids)
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.execute(_UNLOCKS, [order_lock_key(o) for o in order_ids])
            return [None] * len(order_ids)

    async def close(self) -> None:
        async with self._mutex:
            if self._conn is not None:
                await self._conn.close(timeout=self._timeout_s)
                self._conn = None
            self._orders.clear()
