"""The bounded pool of asyncio workers that pull orders from the queue and execute them.

One fetch loop reads only as many entries as there are free slots, so nothing waits in
memory that another process could be running; each entry runs in its own task, at most
`concurrency` at once. At start it takes back its own unfinished entries, and from then
on it also reclaims entries that other consumers left idle (they died); a housekeeping
loop keeps this process's own entries from looking idle and queues retries when due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import attrs
from redis.exceptions import RedisError

from order_engine.engine.execution import Executor, HeadStart
from order_engine.engine.locks import AdvisoryLocks
from order_engine.logs import bind_order
from order_engine.outage import DEPENDENCY_ERRORS
from order_engine.queue import Entry, OrderQueue

log = logging.getLogger(__name__)

QUEUE_ERRORS = (RedisError, OSError)


@attrs.frozen
class Recovery:
    """How entries that were not finished come back."""

    reclaim_idle_ms: int = 15_000
    """An entry idle this long in its consumer is taken over by another."""
    max_deliveries: int = 5
    """An entry delivered more often than this is dead-lettered and its order failed."""
    busy_delay_s: float = 1.0
    """When another delivery of the same order is running, look again after this."""


class WorkerPool:
    def __init__(
        self,
        queue: OrderQueue,
        executor: Executor,
        locks: AdvisoryLocks,
        *,
        concurrency: int,
        shutdown_timeout_s: float,
        block_ms: int = 500,
        recovery: Recovery | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._executor = executor
        self._locks = locks
        self._concurrency = concurrency
        self._shutdown_timeout_s = shutdown_timeout_s
        self._block_ms = block_ms
        self._recovery = recovery or Recovery()
        self._rng = rng or random.Random()
        self._tasks: dict[asyncio.Task[None], Entry] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        # Consecutive dependency failures: the pool waits longer after each.
        self._outages = 0
        self._resume_at = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        # No Redis call here: the first read creates the group if it is missing, and a
        # Redis that is down at start-up is retried like any later outage.
        self._loops = [
            asyncio.create_task(self._fetch_loop(), name="worker-fetch"),
            asyncio.create_task(self._housekeeping_loop(), name="worker-housekeeping"),
        ]

    async def stop(self) -> None:
        """Stop pulling, give in-flight orders until the deadline, then cancel the rest.

        A cancelled order is not acknowledged: its entry stays pending, to be reclaimed
        by another process (or this one, restarted), and every status it reached was
        committed whole.
        """
        self._stopping.set()
        self._slot_freed.set()
        # Not cancelled: a cancelled XREADGROUP can leave its connection a reply behind.
        # The loops notice the flag within one block interval.
        await asyncio.gather(*self._loops)
        if self._tasks:
            log.info("waiting up to %ss for %d orders", self._shutdown_timeout_s, len(self._tasks))
            _, unfinished = await asyncio.wait(self._tasks, timeout=self._shutdown_timeout_s)
            for task in unfinished:
                task.cancel()
            if unfinished:
                log.warning("left %d orders for redelivery", len(unfinished))
                await asyncio.gather(*unfinished, return_exceptions=True)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _outage(self, what: str, exc: BaseException) -> float:
        """Note a dependency failure; returns how long the pool now holds back."""
        self._outages += 1
        delay = min(0.1 * 2.0**self._outages, 5.0) * self._rng.uniform(0.5, 1.0)
        self._resume_at = time.monotonic() + delay
        log.warning("%s failed (%r); holding back %.1fs", what, exc, delay)
        return delay

    async def _fetch(self, free: int, own_after: str | None, reclaim_due: bool) -> list[Entry]:
        if own_after is not None:
            return await self._queue.read_own_pending(free, after=own_after)
        if reclaim_due:
            return await self._queue.reclaim(min_idle_ms=self._recovery.reclaim_idle_ms, count=free)
        return await self._queue.read(free, block_ms=self._block_ms)

    async def _fetch_loop(self) -> None:
        # This consumer's own pending entries first (a restart under the same name),
        # read from id 0 onwards; None once they are all taken back.
        own_after: str | None = "0"
        reclaim_every = self._recovery.reclaim_idle_ms / 1000 / 2
        next_reclaim = time.monotonic()
        while not self._stopping.is_set():
            if (wait := self._resume_at - time.monotonic()) > 0:
                await self._pause(wait)
                continue
            free = self._concurrency - len(self._tasks)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            reclaim_due = time.monotonic() >= next_reclaim
            try:
                entries = await self._fetch(free, own_after, reclaim_due)
            except QUEUE_ERRORS as exc:
                self._outage("queue read", exc)
                continue
            self._outages = 0
            if own_after is not None:
                own_after = entries[-1].entry_id if len(entries) == free else None
            elif reclaim_due and len(entries) < free:
                next_reclaim = time.monotonic() + reclaim_every
            for entry in entries:
                task = asyncio.create_task(self._handle(entry), name=f"order-{entry.order_id}")
                self._tasks[task] = entry
                task.add_done_callback(self._finished)

    async def _housekeeping_loop(self) -> None:
        tick_s = 0.2
        renew_every = self._recovery.reclaim_idle_ms / 1000 / 3
        next_renew = time.monotonic() + renew_every
        while not self._stopping.is_set():
            try:
                moved = await self._queue.move_due_retries(int(time.time() * 1000))
                if moved:
                    log.info("queued %d due retries", moved)
                if time.monotonic() >= next_renew:
                    next_renew = time.monotonic() + renew_every
                    await self._queue.renew([e.entry_id for e in self._tasks.values()])
            except QUEUE_ERRORS as exc:
                log.warning("queue housekeeping failed: %r", exc)
            await self._pause(tick_s)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._slot_freed.set()

    async def _handle(self, entry: Entry) -> None:
        if entry.order_id is None:
            log.warning("entry %s names no order; dropping it", entry.entry_id)
            await self._finish(entry)
            return
        bind_order(entry.order_id)
        # The order is read, and quoted when the entry says what it asks, while its lock
        # is taken: the round trips and the quotes overlap instead of adding up.
        head_start = self._executor.head_start(entry.order_id, entry.ask)
        try:
            locked = await self._locks.try_lock_order(entry.order_id, within_s=head_start.spare_s)
        except DEPENDENCY_ERRORS as exc:
            head_start.cancel()
            await self._later(entry, self._outage(f"order {entry.order_id}: lock", exc))
            return
        except BaseException:
            head_start.cancel()
            raise
        if not locked:
            head_start.cancel()
            # Another delivery of this order is running: let it finish, then look again.
            log.info("order %s is being executed elsewhere", entry.order_id)
            await self._later(entry, self._recovery.busy_delay_s)
            return
        try:
            await self._run(entry, head_start)
        finally:
            # Not waited for: the slot is free at once, the lock goes back with the next
            # batch, and another delivery of this order here waits for that.
            self._locks.unlock_order(entry.order_id, within_s=head_start.spare_s)

    async def _run(self, entry: Entry, head_start: HeadStart) -> None:
        assert entry.order_id is not None
        try:
            if entry.deliveries > self._recovery.max_deliveries:
                head_start.cancel()
                reason = (
                    f"its queue entry was delivered {entry.deliveries} times without finishing"
                    f" (limit {self._recovery.max_deliveries})"
                )
                log.error("order %s: dead-lettered: %s", entry.order_id, reason)
                await self._executor.abandon(entry.order_id, reason)
                await self._queue.dead_letter(entry, reason)
                return
            outcome = await self._executor.run(entry.order_id, head_start=head_start)
        except DEPENDENCY_ERRORS as exc:
            await self._later(entry, self._outage(f"order {entry.order_id}", exc))
            return
        except Exception:
            # Left pending: reclaimed after the idle time, and dead-lettered if it keeps
            # failing like this.
            log.exception("order %s: execution stopped", entry.order_id)
            return
        self._outages = 0
        if outcome.order is None:
            log.warning("entry %s names unknown order %s", entry.entry_id, entry.order_id)
        if outcome.retry_in_s is not None:
            await self._later(entry, outcome.retry_in_s)
        else:
            await self._finish(entry)

    async def _finish(self, entry: Entry) -> None:
        try:
            await self._queue.ack(entry.entry_id)
        except QUEUE_ERRORS as exc:
            # Harmless: a redelivery finds the order terminal and acks it then.
            log.warning("could not ack entry %s: %r", entry.entry_id, exc)

    async def _later(self, entry: Entry, delay_s: float) -> None:
        """Hand the order to the retry schedule, due in `delay_s`."""
        assert entry.order_id is not None
        due_ms = int((time.time() + delay_s) * 1000)
        try:
            await self._queue.schedule_retry(entry.entry_id, entry.order_id, due_ms)
        except QUEUE_ERRORS as exc:
            # Still pending in this consumer: reclaimed once it has been idle long enough.
            log.warning("could not schedule order %s again: %r", entry.order_id, exc)
