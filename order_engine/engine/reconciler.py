"""Puts back into the queue the accepted orders that Redis no longer holds work for.

Postgres is the source of truth and Redis only holds work in motion, which it can lose:
an empty restart or a FLUSHALL, an enqueue that failed after its order was committed, a
crash between the two. One process at a time (the holder of an advisory lock) compares
the queued, non-terminal orders that have not moved for a while with what Redis holds
(the stream and the retry schedule) and queues the missing ones again. Queuing one that
is in fact still running costs nothing but a delivery: the per-order lock and the state
machine make a second delivery harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from order_engine.leader import Leadership
from order_engine.outage import DEPENDENCY_ERRORS
from order_engine.queue import OrderQueue
from order_engine.store.orders import OrderStore

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        store: OrderStore,
        queue: OrderQueue,
        leadership: Leadership,
        *,
        interval_s: float,
        grace_s: float,
        batch: int = 1000,
    ) -> None:
        self._store = store
        self._queue = queue
        self._leadership = leadership
        self._interval_s = interval_s
        self._grace = timedelta(seconds=grace_s)
        self._batch = batch
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reconciler")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def run_once(self) -> int:
        """One sweep, if this process leads; returns how many orders were queued again."""
        if not await self._leadership.try_lead():
            return 0
        stalled = await self._store.list_stalled(idle_for=self._grace, limit=self._batch)
        if not stalled:
            return 0
        live = await self._queue.live_order_ids()
        missing = [order_id for order_id in stalled if order_id not in live]
        for order_id in missing:
            await self._queue.enqueue(order_id)
        if missing:
            log.warning("re-queued %d orders that Redis held no work for", len(missing))
        return len(missing)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except DEPENDENCY_ERRORS as exc:
                log.warning("reconciler sweep failed: %r", exc)
            except Exception:
                log.exception("reconciler sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
