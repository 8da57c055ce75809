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
OK = "ok"


@attrs.frozen
class Check:
    name: str
    probe: Callable[[], Awaitable[object]]
    failed: str = "down"
    """What the readiness body says of it when the probe fails."""


class NotReady(Exception):
    """What a `condition` probe raises when its condition does not hold."""


def condition(holds: Callable[[], bool], problem: str) -> Callable[[], Awaitable[None]]:
    """A probe of something the process already knows (no I/O): fails when `holds()` is
    false, logging `problem`."""

    async def probe() -> None:
        if not holds():
            raise NotReady(problem)

    return probe


@attrs.frozen
class HealthReport:
    checks: Mapping[str, str]
    """Each check by name: "ok", or its `failed` word when its probe failed or timed out."""
    queue_depth: int | None
    in_flight: int
    figures: Mapping[str, object] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        return all(state == OK for state in self.checks.values())


class HealthCheck:
    def __init__(
        self,
        checks: Sequence[Check],
        queue: OrderQueue,
        workers: WorkerPool,
        *,
        figures: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        self._checks = tuple(checks)
        self._queue = queue
        self._workers = workers
        self._figures = dict(figures or {})

    async def _answers(self, check: Check) -> str:
        try:
            await asyncio.wait_for(check.probe(), CHECK_TIMEOUT_S)
        except Exception as exc:
            log.warning("health: %s is %s: %r", check.name, check.failed, exc)
            return check.failed
        return OK

    async def _depth(self) -> int | None:
        try:
            return await asyncio.wait_for(self._queue.depth(), CHECK_TIMEOUT_S)
        except Exception as exc:
            log.warning("health: queue depth unknown: %r", exc)
            return None

    async def check(self) -> HealthReport:
        """Every check and the queue's depth at once, so that the answer takes one
        timeout at most however many dependencies are down."""
        depth, states = await asyncio.gather(
            self._depth(), asyncio.gather(*(self._answers(c) for c in self._checks))
        )
        checks = {c.name: state for c, state in zip(self._checks, states, strict=True)}
        figures = {name: read() for name, read in self._figures.items()}
        return HealthReport(checks, depth, self._workers.in_flight, figures)
