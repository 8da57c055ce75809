"""Whether the engine's dependencies answer, and how much work is in motion.

Readiness is a list of named checks, each a probe that raises or times out when its
dependency does not answer; adding a dependency is adding one `Check` in app.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

import attrs

from order_engine.engine.worker import WorkerPool
from order_engine.queue import OrderQueue

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0


@attrs.frozen
class Check:
    name: str
    probe: Callable[[], Awaitable[object]]


@attrs.frozen
class HealthReport:
    checks: Mapping[str, bool]
    """Each check by name: True when its dependency answered in time."""
    queue_depth: int | None
    in_flight: int

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


class HealthCheck:
    def __init__(self, checks: Sequence[Check], queue: OrderQueue, workers: WorkerPool) -> None:
        self._checks = tuple(checks)
        self._queue = queue
        self._workers = workers

    async def _answers(self, check: Check) -> bool:
        try:
            await asyncio.wait_for(check.probe(), CHECK_TIMEOUT_S)
        except Exception as exc:
            log.warning("health: %s does not answer: %r", check.name, exc)
            return False
        return True

    async def _depth(self) -> int | None:
        try:
            return await asyncio.wait_for(self._queue.depth(), CHECK_TIMEOUT_S)
        except Exception as exc:
            log.warning("health: queue depth unknown: %r", exc)
            return None

    async def check(self) -> HealthReport:
        """Every check and the queue's depth at once, so that the answer takes one
        timeout at most however many dependencies are down."""
        depth, *answers = await asyncio.gather(
            self._depth(), *(self._answers(c) for c in self._checks)
        )
        checks = {c.name: bool(ok) for c, ok in zip(self._checks, answers, strict=True)}
        return HealthReport(checks, depth, self._workers.in_flight)
