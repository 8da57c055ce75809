"""A status change as every caller makes it: commit it with its event, then publish."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from order_engine.hub import Hub
from order_engine.orders import Changes, Order, OrderEvent, OrderStatus
from order_engine.store import OrderStore

# Told of every committed transition: the order after it, its event, and when the
# previous status began (None when the caller does not know).
Observer = Callable[[Order, OrderEvent, datetime | None], None]


class Transitions:
    def __init__(self, store: OrderStore, hub: Hub, observer: Observer | None = None) -> None:
        self._store = store
        self._hub = hub
        self._observer = observer

    async def apply(
        self,
        order_id: uuid.UUID,
        status: OrderStatus,
        changes: Changes = Changes(),
        data: Mapping[str, Any] | None = None,
        *,
        since: datetime | None = None,
    ) -> Order:
        """Raises StatusConflict or OrderNotFound (from the store) and changes nothing then.

        `since`: when the order's previous status began, for the step's duration.
        """
        order, event = await self._store.transition(order_id, status, changes, data)
        return await self._committed(order, event, since)

    async def record(
        self,
        order_id: uuid.UUID,
        status: OrderStatus,
        changes: Changes = Changes(),
        data: Mapping[str, Any] | None = None,
    ) -> Order:
        """An event that keeps the order in `status` (a retry, a new quote), published
        like any other once committed."""
        order, event = await self._store.record(order_id, status, changes, data)
        return await self._committed(order, event, None)

    async def _committed(self, order: Order, event: OrderEvent, since: datetime | None) -> Order:
        """Tell the observer and the hub of an event that is committed."""
        if self._observer is not None:
            self._observer(order, event, since)
        await self._hub.publish(event)
        return order
