"""Group commit in one event loop: calls made in the same turn of the loop run as one
batch (one statement, one round trip), and each caller gets its own result.

A call waits at most for the turn to end and for a free place among the batches in
flight; under load, batches grow instead of round trips multiplying. Two calls with the
same key never share a batch (one UPDATE changes a row once): the later one waits for
the next. A batch that fails fails every caller in it with the same exception.
"""

from __future__ import annotations

import asyncio
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
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._scheduled = False
        # The loop keeps only weak references to tasks.
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            # At the next turn: every task that runs in this one adds its call first.
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._waiting and self._in_flight < self._max_in_flight:
            batch: list[tuple[T, asyncio.Future[R]]] = []
            later: list[tuple[T, asyncio.Future[R]]] = []
            keys: set[Hashable] = set()
            for entry in self._waiting:
                key = self._key(entry[0]) if self._key is not None else None
                if len(batch) >= self._max_size or (key is not None and key in keys):
                    later.append(entry)
                    continue
                keys.add(key)
                batch.append(entry)
            self._waiting = later
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        """Run one batch and answer its callers; `run` returns one result per item."""
        try:
            results = await self._run([item for item, _ in batch])
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
            if self._waiting:
                self._schedule()
