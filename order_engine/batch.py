"""Group commit in one event loop: calls made in the same turn of the loop run as one
batch (one statement, one round trip), and each caller gets its own result.

A call waits at most for the turn to end and for a free place among the batches in
flight; under load, batches grow instead of round trips multiplying. A caller that has
other work in flight (quotes, say) can give the time it can spare: such calls gather
over that window into fewer batches, and a call that cannot wait takes them all along.
A call whose key a batch in flight already has waits for that batch to end (one UPDATE
changes a row once, and two changes of one order apply in the order they were asked
for). A batch that fails fails every caller in it with the same exception.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        key: Callable[[T], Hashable] | None = None,
        max_size: int = 500,
        max_in_flight: int = 4,
    ) -> None:
        self._run = run
        self._key = key
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        # Each waiting call with the loop time by which its batch should start (0: at once).
        self._waiting: list[tuple[T, asyncio.Future[R], float]] = []
        self._in_flight = 0
        self._scheduled = False
        self._busy_keys: set[Hashable] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        # The loop keeps only weak references to tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        # The loop of the first call, kept: on Python 3.11 get_running_loop() makes a
        # getpid() system call each time, and a batcher is called for every order step.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, item: T) -> R:
        return await self.submit(item)

    def submit(self, item: T, *, within_s: float = 0.0) -> asyncio.Future[R]:
        """Add `item` to the next batch at once; the future has its result. For a caller
        that has more to do before it waits (a task to wrap the call would cost a turn
        of the loop to start and another to finish). `within_s`: how long the caller can
        spare before its batch starts."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = self._loop.create_future()
        if within_s > 0 and len(self._waiting) < self._max_size:
            due = self._loop.time() + within_s
            self._waiting.append((item, future, due))
            if due < self._timer_at:
                self._set_timer(due)
            return future
        self._waiting.append((item, future, 0.0))
        if self._key is None or self._key(item) not in self._busy_keys:
            self._schedule()
        return future

    def _set_timer(self, when: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)
        self._timer_at = when

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._wake()

    def _wake(self) -> None:
        """Start a batch if a waiting call is due and free to go, else set the timer for
        the first that will be."""
        assert self._loop is not None
        now = 0.0
        first_due = math.inf
        for item, _, due in self._waiting:
            if self._key is not None and self._key(item) in self._busy_keys:
                continue
            if due:
                now = now or self._loop.time()
                if due > now:
                    first_due = min(first_due, due)
                    continue
            self._schedule()
            return
        if first_due < self._timer_at:
            self._set_timer(first_due)

    def _schedule(self) -> None:
        """Start a batch unless one is starting already or too many are in flight. Its
        task takes the waiting calls when it first runs, at the next turn of the loop:
        every task that runs in this one adds its call first."""
        if self._scheduled or self._in_flight >= self._max_in_flight:
            return
        self._scheduled = True
        self._in_flight += 1
        assert self._loop is not None
        task = self._loop.create_task(self._execute())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """Up to max_size waiting calls, oldest first, due or not, none whose key a batch
        in flight (this one included) already has: that call waits for the batch to end."""
        batch: list[tuple[T, asyncio.Future[R]]] = []
        later: list[tuple[T, asyncio.Future[R], float]] = []
        for entry in self._waiting:
            key = self._key(entry[0]) if self._key is not None else None
            if len(batch) >= self._max_size or (key is not None and key in self._busy_keys):
                later.append(entry)
                continue
            if key is not None:
                self._busy_keys.add(key)
            batch.append(entry[:2])
        self._waiting = later
        return batch

    async def _execute(self) -> None:
        """Run one batch and answer its callers; `run` returns one result per item."""
        self._scheduled = False
        batch = self._take()
        self._wake()
        try:
            results = await self._run([item for item, _ in batch]) if batch else []
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            if self._key is not None:
                self._busy_keys.difference_update(self._key(item) for item, _ in batch)
            self._wake()
