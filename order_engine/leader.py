"""Leadership of a periodic job across processes: a Postgres session advisory lock held
on a connection of its own.

A pooled connection would run `pg_advisory_unlock_all()` when it goes back to the pool,
so the lock lives on a connection this object keeps open. If the process dies, Postgres
drops the connection and the lock with it, and the next process to ask takes the lead.
"""

from __future__ import annotations

import asyncio
import enum
import logging

import asyncpg

log = logging.getLogger(__name__)

# Two-key locks, so that leaders stay out of the space of order locks (one bigint).
LEADER_CLASS = 0x6F65


class Role(enum.IntEnum):
    RECONCILER = 1
    SLOT_PRODUCER = 2


class Leadership:
    def __init__(self, dsn: str, role: Role, *, timeout_s: float) -> None:
        self._dsn = dsn
        self._role = role
        self._timeout_s = timeout_s
        self._conn: asyncpg.Connection | None = None
        self._leading = False
        self._mutex = asyncio.Lock()

    @property
    def key(self) -> tuple[int, int]:
        return LEADER_CLASS, self._role

    @property
    def backend_pid(self) -> int | None:
        """The Postgres backend that holds the lock while this process leads."""
        if self._conn is None or self._conn.is_closed() or not self._leading:
            return None
        return self._conn.get_server_pid()

    async def try_lead(self) -> bool:
        """Whether this process leads, taking the lead if it is free."""
        async with self._mutex:
            if self._conn is not None and not self._conn.is_closed():
                if self._leading:
                    return True
            else:
                if self._leading:
                    log.warning("lost the lead as %s with its connection", self._role.name)
                self._leading = False
                self._conn = await asyncpg.connect(
                    self._dsn, timeout=self._timeout_s, command_timeout=self._timeout_s
                )
            self._leading = bool(
                await self._conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *self.key)
            )
            if self._leading:
                log.info("took the lead as %s", self._role.name)
            return self._leading

    async def resign(self) -> None:
        """Give the lead up (its lock may already be gone with its connection): the next
        try_lead starts from a new connection."""
        await self.close()

    async def close(self) -> None:
        async with self._mutex:
            if self._conn is not None:
                await self._conn.close(timeout=self._timeout_s)
                self._conn = None
            self._leading = False
