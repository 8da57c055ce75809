"""Whether the engine's dependencies answer, and how much work is in motion."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import attrs
import redis.asyncio as aioredis

from order_engine.chain.client import ChainClient
from order_engine.engine.worker import WorkerPool
from order_engine.queue import OrderQueue
from order_engine.store.orders import OrderStore

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0


@attrs.frozen
class HealthReport:
    postgres: bool
    redis: bool
    queue_depth: int | None
    in_flight: int
    chain: bool
    """Slots are being produced and this process's view of the chain follows them."""
    chain_slot: int

    @property
    def ok(self) -> bool:
        return self.postgres and self.redis and self.chain


class HealthCheck:
    def __init__(
        self,
        store: OrderStore,
        redis: aioredis.Redis,
        queue: OrderQueue,
        workers: WorkerPool,
        chain: ChainClient,
    ) -> None:
        self._store = store
        self._redis = redis
        self._queue = queue
        self._workers = workers
        self._chain = chain

    async def _answers(self, name: str, probe: Awaitable[object]) -> bool:
        try:
            await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
        except Exception as exc:
            log.warning("health: %s does not answer: %r", name, exc)
            return False
        return True

    async def check(self) -> HealthReport:
        postgres, redis = await asyncio.gather(
            self._answers("postgres", self._store.ping()),
            self._answers("redis", self._redis.ping()),
        )
        depth = None
        if redis:
            try:
                depth = await asyncio.wait_for(self._queue.depth(), CHECK_TIMEOUT_S)
            except Exception as exc:
                log.warning("health: queue depth unknown: %r", exc)
        return HealthReport(
            postgres,
            redis,
            depth,
            self._workers.in_flight,
            chain=self._chain.current,
            chain_slot=self._chain.slot,
        )
