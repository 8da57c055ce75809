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


# Takes and gives back locks in one statement. Every transaction on this connection walks
# every lock it holds (one per order in flight) when it ends, so it runs as few as it can.
_LOCKS = """
SELECT CASE WHEN take THEN pg_try_advisory_lock(key) ELSE pg_advisory_unlock(key) END
FROM unnest($1::bigint[], $2::bool[]) WITH ORDINALITY AS t(key, take, n) ORDER BY n
"""


def order_lock_key(order_id: uuid.UUID) -> int:
    """A bigint per order; two orders sharing one only run one after the other."""
    return int.from_bytes(order_id.bytes[:8], "big", signed=True)


class AdvisoryLocks:
    def __init__(self, dsn: str, *, timeout_s: float) -> None:
        self._dsn = dsn
        self._timeout_s = timeout_s
        self._conn: asyncpg.Connection | None = None
        # One query at a time on the connection; the locks and unlocks asked for in one
        # turn of the loop, or within the time their callers can spare, share one query.
        self._mutex = asyncio.Lock()
        self._batches: Batcher[tuple[uuid.UUID, bool], bool] = Batcher(
            self._batch, key=lambda call: order_lock_key(call[0])
        )
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

    async def try_lock_order(self, order_id: uuid.UUID, *, within_s: float = 0.0) -> bool:
        """True if this caller now holds the order; False if anyone, here or in another
        process, already does. `within_s`: how long the caller can spare."""
        return await self._batches.submit((order_id, True), within_s=within_s)

    def unlock_order(self, order_id: uuid.UUID, *, within_s: float = 0.0) -> asyncio.Future[bool]:
        """Give the order back within `within_s`; the caller need not wait. A failure
        needs no handling: the connection has gone, and every lock on it with it."""
        unlocked = self._batches.submit((order_id, False), within_s=within_s)
        unlocked.add_done_callback(lambda f: f.cancelled() or f.exception())
        return unlocked

    async def _batch(self, calls: list[tuple[uuid.UUID, bool]]) -> list[bool]:
        """One answer a call: for a lock, whether it was taken."""
        async with self._mutex:
            self._orders.difference_update(order_id for order_id, take in calls if not take)
            # An order this process holds already is not locked again (the caller hears
            # it is taken); with the connection gone, its locks are gone already.
            asked: list[tuple[uuid.UUID, bool]] = [
                (o, take) for o, take in calls if take and o not in self._orders
            ]
            if self._conn is not None and not self._conn.is_closed():
                asked += [(o, take) for o, take in calls if not take]
            taken: set[uuid.UUID] = set()
            if asked:
                conn = await self._connection()
                keys = [order_lock_key(o) for o, _ in asked]
                rows = await conn.fetch(_LOCKS, keys, [take for _, take in asked])
                taken = {o for (o, take), row in zip(asked, rows, strict=True) if take and row[0]}
                self._orders |= taken
            return [o in taken if take else True for o, take in calls]

    async def close(self) -> None:
        async with self._mutex:
            if self._conn is not None:
                await self._conn.close(timeout=self._timeout_s)
                self._conn = None
            self._orders.clear()
