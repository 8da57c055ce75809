"""The order, its statuses and the transitions allowed between them.

Pure: no I/O. The store enforces these rules in SQL; everything else asks here.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

import attrs

from order_engine.domain.routes import Route, RouteAsk

_T = TypeVar("_T")


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    SNIPER = "sniper"

    @property
    def rests(self) -> bool:
        """Whether an order of this type rests in `waiting` until its trigger fires."""
        return self is not OrderType.MARKET


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    ROUTING = "routing"
    BUILDING = "building"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {OrderStatus.CONFIRMED, OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
)

_FORWARD: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.ROUTING, OrderStatus.WAITING, OrderStatus.CANCELLED}
    ),
    OrderStatus.WAITING: frozenset(
        {OrderStatus.ROUTING, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.ROUTING: frozenset({OrderStatus.BUILDING}),
    OrderStatus.BUILDING: frozenset({OrderStatus.SUBMITTED}),
    OrderStatus.SUBMITTED: frozenset({OrderStatus.CONFIRMED}),
}

# Every non-terminal status may fail; terminal statuses lead nowhere.
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    status: (
        frozenset()
        if status.is_terminal
        else _FORWARD.get(status, frozenset()) | {OrderStatus.FAILED}
    )
    for status in OrderStatus
}


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


def sources_of(new: OrderStatus) -> frozenset[OrderStatus]:
    """The statuses from which `new` may be entered (what the store's UPDATE checks)."""
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if new in targets)


class FailureCode(enum.StrEnum):
    NO_ROUTE = "no_route"
    SLIPPAGE_EXCEEDED = "slippage_exceeded"
    DEX_ERROR = "dex_error"
    ENQUEUE_FAILED = "enqueue_failed"
    DEAD_LETTERED = "dead_lettered"
    TX_EXPIRED = "tx_expired"


@attrs.frozen
class Order:
    id: uuid.UUID
    type: OrderType
    status: OrderStatus
    user_wallet: str
    input_token: str
    output_token: str
    input_amount: Decimal
    slippage_bps: int
    limit_price: Decimal | None
    expires_at: datetime | None
    dex: str | None
    quoted_amount_out: Decimal | None
    min_amount_out: Decimal | None
    amount_out: Decimal | None
    executed_price: Decimal | None
    tx_hash: str | None
    attempts: int
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    route: Route | None = None
    """The route chosen for the current attempt; its transaction is built from it."""
    tx_slot: int | None = None
    """The chain slot the current transaction was built at (its expiry counts from it)."""
    client_order_id: str | None = None

    @property
    def ask(self) -> RouteAsk | None:
        """What the router is asked when the order runs, for an order routed as soon as
        it runs (a market order that has not been routed yet)."""
        if self.type.rests or self.status is not OrderStatus.PENDING:
            return None
        return RouteAsk(self.input_token, self.output_token, self.input_amount)


@attrs.frozen
class NewOrder:
    """A validated order request, before it has an id or a row."""

    type: OrderType
    user_wallet: str
    input_token: str
    output_token: str
    input_amount: Decimal
    slippage_bps: int
    limit_price: Decimal | None
    expires_at: datetime | None
    client_order_id: str | None = None
    """The client's own name for the order, unique per wallet."""

    def placed(self, order_id: uuid.UUID, at: datetime) -> Order:
        """The order as the store inserts it: pending, nothing else decided yet."""
        return Order(
            id=order_id,
            type=self.type,
            status=OrderStatus.PENDING,
            user_wallet=self.user_wallet,
            input_token=self.input_token,
            output_token=self.output_token,
            input_amount=self.input_amount,
            slippage_bps=self.slippage_bps,
            limit_price=self.limit_price,
            expires_at=self.expires_at,
            dex=None,
            quoted_amount_out=None,
            min_amount_out=None,
            amount_out=None,
            executed_price=None,
            tx_hash=None,
            attempts=0,
            failure_code=None,
            failure_reason=None,
            created_at=at,
            updated_at=at,
            client_order_id=self.client_order_id,
        )


@attrs.frozen
class RestingOrder:
    """What deciding to fire a resting (`waiting`) order takes, and no more: the trigger
    index holds one per order, by the hundred thousand."""

    id: uuid.UUID
    type: OrderType
    input_token: str
    output_token: str
    input_amount: Decimal
    limit_price: Decimal | None
    expires_at: datetime | None
    rest_slot: int
    """The chain slot it rests from; a sniper fires at a launch after it."""

    @property
    def pair(self) -> tuple[str, str]:
        return self.input_token, self.output_token


@attrs.frozen
class Changes:
    """Columns a transition writes besides the status; None leaves a column as it is."""

    dex: str | None = None
    quoted_amount_out: Decimal | None = None
    min_amount_out: Decimal | None = None
    amount_out: Decimal | None = None
    executed_price: Decimal | None = None
    tx_hash: str | None = None
    tx_slot: int | None = None
    route: Route | None = None
    attempts: int | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    forget_tx: bool = False
    """Clear `tx_hash` and `tx_slot`: the transaction did not land and a retry builds a
    new one."""

    def applied_to(self, order: Order, status: OrderStatus, at: datetime) -> Order:
        """`order` after a transition to `status` at `at` with these changes, exactly as
        the store writes them, so that nobody reads back what they just wrote."""

        def kept(new: _T | None, old: _T) -> _T:
            return old if new is None else new

        return attrs.evolve(
            order,
            status=status,
            updated_at=at,
            dex=kept(self.dex, order.dex),
            quoted_amount_out=kept(self.quoted_amount_out, order.quoted_amount_out),
            min_amount_out=kept(self.min_amount_out, order.min_amount_out),
            amount_out=kept(self.amount_out, order.amount_out),
            executed_price=kept(self.executed_price, order.executed_price),
            tx_hash=None if self.forget_tx else kept(self.tx_hash, order.tx_hash),
            tx_slot=None if self.forget_tx else kept(self.tx_slot, order.tx_slot),
            route=kept(self.route, order.route),
            attempts=kept(self.attempts, order.attempts),
            failure_code=kept(self.failure_code, order.failure_code),
            failure_reason=kept(self.failure_reason, order.failure_reason),
        )
