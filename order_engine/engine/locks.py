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

log = logging.getLogger(__name__)


def order_lock_key(order_id: uuid.UUID) -> int:
    """A bigint per order; two orders sharing one only run one after the other."""
    return int.from_bytes(order_id.bytes[:8], "big", signed=True)


class AdvisoryLocks:
    def __init__(self, dsn: str, *, timeout_s: float) -> None:
        self._dsn = dsn
        self._timeout_s = timeout_s
        self._conn: asyncpg.Connection | None = None
        # One query at a time on the connection; each is a few hundred microseconds.
        self._mutex = asyncio.Lock()
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
        async with self._mutex:
            if order_id in self._orders:
                return False
            conn = await self._connection()
            locked = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock($1)", order_lock_key(order_id))
            )
            if locked:
                self._orders.add(order_id)
            return locked

    async def unlock_order(self, order_id: uuid.UUID) -> None:
        async with self._mutex:
            self._orders.discard(order_id)
            if self._conn is None or self._conn.is_closed():
                return
            await self._conn.execute("SELECT pg_advisory_unlock($1)", order_lock_key(order_id))

    async def close(self) -> None:
        async with self._mutex:
            if self._conn is not None:
                await self._conn.close(timeout=self._timeout_s)
                self._conn = None
            self._orders.clear()
