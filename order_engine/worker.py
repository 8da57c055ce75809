"""The bounded pool of asyncio workers that pull orders from the queue and execute them.

One fetch loop reads only as many entries as there are free slots, so nothing waits in
memory that another process could be running; each entry runs in its own task, at most
`concurrency` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from order_engine.logs import bind_order
from order_engine.queue import Entry, OrderQueue
from order_engine.services.execution import Executor

log = logging.getLogger(__name__)


class WorkerPool:
    def __init__(
        self,
        queue: OrderQueue,
        executor: Executor,
        *,
        concurrency: int,
        shutdown_timeout_s: float,
        block_ms: int = 500,
    ) -> None:
        self._queue = queue
        self._executor = executor
        self._concurrency = concurrency
        self._shutdown_timeout_s = shutdown_timeout_s
        self._block_ms = block_ms
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._fetcher: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        # No Redis call here: the first read creates the group if it is missing, and a
        # Redis that is down at start-up is retried like any later outage.
        self._fetcher = asyncio.create_task(self._fetch_loop(), name="worker-fetch")

    async def stop(self) -> None:
        """Stop pulling, give in-flight orders until the deadline, then cancel the rest.

        A cancelled order is not acknowledged: its entry stays pending for a later
        delivery, and every status it reached was committed whole.
        """
        self._stopping.set()
        self._slot_freed.set()
        if self._fetcher is not None:
            # Not cancelled: a cancelled XREADGROUP can leave its connection a reply
            # behind. The loop notices the flag within one block interval.
            await self._fetcher
        if self._tasks:
            log.info("waiting up to %ss for %d orders", self._shutdown_timeout_s, len(self._tasks))
            _, unfinished = await asyncio.wait(self._tasks, timeout=self._shutdown_timeout_s)
            for task in unfinished:
                task.cancel()
            if unfinished:
                log.warning("left %d orders for redelivery", len(unfinished))
                await asyncio.gather(*unfinished, return_exceptions=True)

    async def _fetch_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self._concurrency - len(self._tasks)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                entries = await self._queue.read(free, block_ms=self._block_ms)
            except (RedisError, OSError) as exc:
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                log.warning("queue read failed (%s); retrying in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            failures = 0
            for entry in entries:
                task = asyncio.create_task(self._handle(entry), name=f"order-{entry.order_id}")
                self._tasks.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    async def _handle(self, entry: Entry) -> None:
        if entry.order_id is None:
            log.warning("entry %s names no order; dropping it", entry.entry_id)
        else:
            bind_order(entry.order_id)
            try:
                order = await self._executor.run(entry.order_id)
            except Exception:
                # Left unacknowledged: the entry is delivered again later.
                log.exception("order %s: execution stopped", entry.order_id)
                return
            if order is None:
                log.warning("entry %s names unknown order %s", entry.entry_id, entry.order_id)
        try:
            await self._queue.ack(entry.entry_id)
        except (RedisError, OSError) as exc:
            # Harmless: a redelivery finds the order terminal and acks it then.
            log.warning("could not ack entry %s: %s", entry.entry_id, exc)
