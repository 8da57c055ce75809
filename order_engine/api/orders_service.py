"""Placing orders and reading them back: what the API asks of the engine."""

from __future__ import annotations

import asyncio
import logging
import uuid

import attrs
from redis.exceptions import RedisError

from order_engine.api.ratelimit import SubmissionLimiter
from order_engine.batch import Batcher
from order_engine.domain.errors import DomainError, OrderNotFound, Quota
from order_engine.domain.events import Cancelled, Failed, OrderEvent
from order_engine.domain.orders import Changes, FailureCode, NewOrder, Order, OrderStatus
from order_engine.logs import bind_order
from order_engine.metrics import Metrics
from order_engine.queue import OrderQueue
from order_engine.store.orders import OrderStore, WalletCursor

log = logging.getLogger(__name__)


@attrs.frozen
class Placement:
    order: Order
    quotas: tuple[Quota, ...]
    """How the submission limits stand after this order (none when none is configured)."""


@attrs.frozen
class _Accept:
    new: NewOrder
    execute: bool


class OrderService:
    def __init__(
        self,
        store: OrderStore,
        queue: OrderQueue,
        metrics: Metrics | None = None,
        limiter: SubmissionLimiter | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._metrics = metrics
        self._limiter = limiter
        self._accepts: Batcher[_Accept, Order] = Batcher(self._accept_batch)

    async def place(self, new: NewOrder, *, execute: bool) -> Placement:
        """Persist a pending order and, with `execute`, queue it.

        The row is committed before the queue entry is written. If the queue cannot take
        the entry, the order is failed (so that it cannot run later behind the client's
        back) and the Redis error goes up, for the API to answer 503. RateLimited, before
        anything is stored, when the wallet or the service is over its submission limit.
        """
        quotas = () if self._limiter is None else await self._limiter.check(new.user_wallet)
        order = await self._accepts(_Accept(new, execute))
        bind_order(order.id)
        log.info("order %s: accepted, %s", order.id, "queued" if execute else "pending")
        if self._metrics is not None:
            self._metrics.accepted(queued=execute)
        return Placement(order, quotas)

    async def execute(self, order_id: uuid.UUID) -> Order:
        """Queue a created order; StatusConflict if it was queued before or is not pending.

        Of concurrent calls exactly one gets past the store's conditional update.
        """
        bind_order(order_id)
        order = await self._store.mark_queued(order_id)
        await self._enqueue_or_fail(order)
        log.info("order %s: queued", order_id)
        if self._metrics is not None:
            self._metrics.accepted(queued=True)
        return order

    async def cancel(self, order_id: uuid.UUID) -> Order:
        """Cancel a pending or waiting order; StatusConflict from any other status.

        A queue entry of the order may still be read later: the worker finds the order
        terminal and acknowledges the entry without running anything.
        """
        bind_order(order_id)
        order, _ = await self._store.transition(
            order_id, OrderStatus.CANCELLED, Cancelled(reason="cancelled by the user")
        )
        log.info("order %s: cancelled by the user", order_id)
        return order

    async def _accept_batch(self, batch: list[_Accept]) -> list[Order | BaseException]:
        """The orders placed in one turn of the loop: one INSERT for them all, then the
        entries of those to execute in one round trip, from this task, before any caller
        wakes: a hop through each caller would hold every entry back a turn or two."""
        inserted = await self._store.insert_orders([(a.new, a.execute) for a in batch])
        results: list[Order | BaseException] = [
            r if isinstance(r, DomainError) else r[0] for r in inserted
        ]
        queued = [
            (index, order)
            for index, (order, accept) in enumerate(zip(results, batch, strict=True))
            if accept.execute and isinstance(order, Order)
        ]
        if not queued:
            return results
        try:
            await self._queue.enqueue_many([(order.id, order.ask) for _, order in queued])
        except (RedisError, OSError) as exc:
            # Each order is failed on its own: one failing to be failed leaves the others.
            await asyncio.gather(
                *(self._fail_unqueued(order, exc) for _, order in queued), return_exceptions=True
            )
            for index, _ in queued:
                results[index] = exc
        return results

    async def _enqueue_or_fail(self, order: Order) -> None:
        try:
            await self._queue.enqueue(order.id, order.ask)
        except (RedisError, OSError) as exc:
            await self._fail_unqueued(order, exc)
            raise

    async def _fail_unqueued(self, order: Order, exc: Exception) -> None:
        """Fail an order whose entry Redis did not take, so that it cannot run later
        behind its client's back."""
        reason = f"the order could not be queued: {exc}"
        log.error("order %s: %s", order.id, reason)
        await self._store.transition(
            order,
            OrderStatus.FAILED,
            Failed(code=FailureCode.ENQUEUE_FAILED.value, reason=reason, attempt=0),
            Changes(failure_code=FailureCode.ENQUEUE_FAILED.value, failure_reason=reason),
        )

    async def get(self, order_id: uuid.UUID) -> Order:
        order = await self._store.get_order(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    async def events(self, order_id: uuid.UUID, *, after_seq: int = 0) -> list[OrderEvent]:
        """The order's events after `after_seq`, oldest first; OrderNotFound if no order."""
        events = await self._store.list_events(order_id, after_seq=after_seq)
        if not events and await self._store.get_order(order_id) is None:
            raise OrderNotFound(order_id)
        return events

    async def wallet_orders(
        self,
        wallet: str,
        *,
        limit: int,
        after: WalletCursor | None,
        status: OrderStatus | None = None,
        client_order_id: str | None = None,
    ) -> tuple[list[Order], WalletCursor | None]:
        """One page, newest first, and the cursor of the next page (None on the last)."""
        page = await self._store.list_wallet_orders(
            wallet, limit=limit + 1, after=after, status=status, client_order_id=client_order_id
        )
        if len(page) <= limit:
            return page, None
        last = page[limit - 1]
        return page[:limit], WalletCursor(last.created_at, last.id)
