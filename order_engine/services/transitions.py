"""A status change as every caller makes it: commit it with its event, then publish."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from order_engine.hub import Hub
from order_engine.orders import Changes, Order, OrderStatus
from order_engine.store import OrderStore


class Transitions:
    def __init__(self, store: OrderStore, hub: Hub) -> None:
        self._store = store
        self._hub = hub

    async def apply(
        self,
        order_id: uuid.UUID,
        status: OrderStatus,
        changes: Changes = Changes(),
        data: Mapping[str, Any] | None = None,
    ) -> Order:
        """Raises StatusConflict or OrderNotFound (from the store) and changes nothing then."""
        order, event = await self._store.transition(order_id, status, changes, data)
        await self._hub.publish(event)
        return order

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
        await self._hub.publish(event)
        return order
