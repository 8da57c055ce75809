"""An order's status events and what each one carries.

Typed values: the engine makes them, the store keeps them, and only the API writes them
in its camelCase JSON (api/serialize.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from order_engine.domain.orders import OrderStatus
from order_engine.domain.routes import Quote, Route


@attrs.frozen
class Accepted:
    """The order was stored (`pending`)."""


@attrs.frozen
class Routed:
    """A route was chosen: the `routing` event, and the rebuild of a retried transaction
    (in `submitted`), which also names its new transaction."""

    quotes: tuple[Quote, ...]
    """One per venue for the direct pair."""
    route: Route
    attempt: int | None = None
    """Set from the second attempt on."""
    min_amount_out: Decimal | None = None
    tx_hash: str | None = None


@attrs.frozen
class Built:
    dex: str
    min_amount_out: Decimal


@attrs.frozen
class Submitted:
    tx_hash: str | None


@attrs.frozen
class Confirmed:
    tx_hash: str
    amount_out: Decimal
    executed_price: Decimal


@attrs.frozen
class Failed:
    code: str
    reason: str
    attempt: int


@attrs.frozen
class RetryScheduled:
    """A transient failure: the order stays in its status until the next attempt."""

    attempt: int
    code: str
    reason: str
    retry_in_ms: int


@attrs.frozen
class Cancelled:
    reason: str


@attrs.frozen
class Waiting:
    """A limit or sniper order rests: what fires it, and until when."""

    expires_at: datetime | None
    slot: int
    """The chain slot it rests from: a sniper fires at a pool launch after it."""
    limit_price: Decimal | None = None
    price: Decimal | None = None
    """The pair's best price when it began resting (None while nothing trades the pair)."""
    token: str | None = None
    """The token a sniper order waits for a pool of."""


@attrs.frozen
class Expired:
    """A resting order reached its deadline without firing."""

    expires_at: datetime


@attrs.frozen
class Legacy:
    """An event stored before payloads were typed: its data as the API wrote it then."""

    api: dict[str, Any]


EventData = (
    Accepted
    | Routed
    | Built
    | Submitted
    | Confirmed
    | Failed
    | RetryScheduled
    | Cancelled
    | Waiting
    | Expired
    | Legacy
)


@attrs.frozen
class OrderEvent:
    order_id: uuid.UUID
    user_wallet: str
    seq: int
    status: OrderStatus
    timestamp: datetime
    data: EventData
    client_order_id: str | None = None
    """The order's clientOrderId, echoed in every message about it."""
