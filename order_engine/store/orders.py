"""Orders and their events in SQL: every status change is one statement, committed and
then published."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import attrs

from order_engine.domain.errors import ClientOrderIdInUse, OrderNotFound, StatusConflict
from order_engine.domain.orders import (
    Changes,
    NewOrder,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    sources_of,
)
from order_engine.hub import Hub

_ORDER_COLUMNS = """
    id, type, status, user_wallet, input_token, output_token, input_amount, slippage_bps,
    limit_price, expires_at, dex, quoted_amount_out, min_amount_out, amount_out,
    executed_price, tx_hash, attempts, failure_code, failure_reason, created_at, updated_at,
    client_order_id
"""

_INSERT_ORDER = f"""
WITH new AS (
    INSERT INTO orders (id, type, status, user_wallet, input_token, output_token,
                        input_amount, slippage_bps, limit_price, expires_at, queued_at, last_seq,
                        client_order_id)
    VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9,
            CASE WHEN $10::boolean THEN now() END, 1, $11)
    RETURNING *
), event AS (
    INSERT INTO order_events (order_id, seq, status, data, created_at)
    SELECT id, 1, status, '{{}}'::jsonb, created_at FROM new
)
SELECT {_ORDER_COLUMNS} FROM new
"""

# One statement: the WHERE re-checks the status under the row lock the UPDATE takes, and
# the event takes the seq the same UPDATE assigned, so a transition and its event commit
# together or not at all.
_TRANSITION = f"""
WITH moved AS (
    UPDATE orders SET
        status = $2,
        last_seq = last_seq + 1,
        updated_at = now(),
        dex = COALESCE($4, dex),
        quoted_amount_out = COALESCE($5, quoted_amount_out),
        min_amount_out = COALESCE($6, min_amount_out),
        amount_out = COALESCE($7, amount_out),
        executed_price = COALESCE($8, executed_price),
        tx_hash = CASE WHEN $14 THEN NULL ELSE COALESCE($9, tx_hash) END,
        attempts = COALESCE($10, attempts),
        failure_code = COALESCE($11, failure_code),
        failure_reason = COALESCE($12, failure_reason)
    WHERE id = $1 AND status = ANY($3::text[])
    RETURNING *
), event AS (
    INSERT INTO order_events (order_id, seq, status, data, created_at)
    SELECT id, last_seq, status, $13::jsonb, updated_at FROM moved
    RETURNING seq
)
SELECT {_ORDER_COLUMNS}, (SELECT seq FROM event) AS event_seq FROM moved
"""

_GET_ORDER = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = $1"

_GET_STATUS = "SELECT status FROM orders WHERE id = $1"

# Queued orders that are not terminal and have not moved for a while: the ones whose
# queue entry Redis may have lost. `waiting` orders rest outside the queue by design.
# Written as NOT IN so that the planner can use the partial index orders_active_idx.
_LIST_STALLED = """
SELECT id FROM orders
WHERE status NOT IN ('confirmed', 'failed', 'cancelled', 'expired', 'waiting')
  AND queued_at IS NOT NULL
  AND updated_at < now() - $1::interval
ORDER BY updated_at
LIMIT $2
"""

_LIST_EVENTS = """
SELECT e.order_id, o.user_wallet, e.seq, e.status, e.data, e.created_at, o.client_order_id
FROM order_events e JOIN orders o ON o.id = e.order_id
WHERE e.order_id = $1 AND e.seq > $2
ORDER BY e.seq
"""


def _wallet_orders_query(*, status: bool, after: bool, client: bool) -> str:
    """A page of a wallet's orders: $1 wallet, $2 limit, then status, then clientOrderId,
    then the keyset.

    Each shape is its own statement, so that each plans as one range of an index
    (orders_wallet_created_idx, or orders_wallet_status_created_idx with a status, or
    one row of orders_wallet_client_order_id_key with a clientOrderId).
    """
    conditions = ["user_wallet = $1"]
    arg = 3
    if status:
        conditions.append(f"status = ${arg}")
        arg += 1
    if client:
        conditions.append(f"client_order_id = ${arg}")
        arg += 1
    if after:
        conditions.append(f"(created_at, id) < (${arg}, ${arg + 1})")
    return f"""
SELECT {_ORDER_COLUMNS} FROM orders
WHERE {" AND ".join(conditions)}
ORDER BY created_at DESC, id DESC
LIMIT $2
"""


WALLET_ORDER_QUERIES = {
    (status, after, client): _wallet_orders_query(status=status, after=after, client=client)
    for status in (False, True)
    for after in (False, True)
    for client in (False, True)
}

_CLIENT_ORDER_ID = """
SELECT id FROM orders WHERE user_wallet = $1 AND client_order_id = $2
"""
_CLIENT_ORDER_ID_KEY = "orders_wallet_client_order_id_key"


# Marks a created (pending, never queued) order as queued; of concurrent callers exactly
# one matches, because the UPDATE re-checks queued_at under the row lock.
_MARK_QUEUED = f"""
UPDATE orders SET queued_at = now(), updated_at = now()
WHERE id = $1 AND status = 'pending' AND queued_at IS NULL
RETURNING {_ORDER_COLUMNS}
"""


@attrs.frozen
class WalletCursor:
    """Where the previous page of a wallet's orders ended: its last (created_at, id)."""

    created_at: datetime
    order_id: uuid.UUID


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode jsonb into Python objects on every pooled connection."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, min_size: int, max_size: int, command_timeout: float
) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        init=init_connection,
    )


def _order(row: asyncpg.Record) -> Order:
    return Order(
        id=row["id"],
        type=OrderType(row["type"]),
        status=OrderStatus(row["status"]),
        user_wallet=row["user_wallet"],
        input_token=row["input_token"],
        output_token=row["output_token"],
        input_amount=row["input_amount"],
        slippage_bps=row["slippage_bps"],
        limit_price=row["limit_price"],
        expires_at=row["expires_at"],
        dex=row["dex"],
        quoted_amount_out=row["quoted_amount_out"],
        min_amount_out=row["min_amount_out"],
        amount_out=row["amount_out"],
        executed_price=row["executed_price"],
        tx_hash=row["tx_hash"],
        attempts=row["attempts"],
        failure_code=row["failure_code"],
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        client_order_id=row["client_order_id"],
    )


def _event(row: asyncpg.Record) -> OrderEvent:
    return OrderEvent(
        order_id=row["order_id"],
        user_wallet=row["user_wallet"],
        seq=row["seq"],
        status=OrderStatus(row["status"]),
        timestamp=row["created_at"],
        data=row["data"],
        client_order_id=row["client_order_id"],
    )


# Told of every committed change: the order after it, its event, and when the previous
# status began (None when the caller does not know).
Observer = Callable[[Order, OrderEvent, datetime | None], None]


class OrderStore:
    """Orders and their events. Every change is committed with its event and then, only
    then, told to the observer and published on the hub (when given)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        hub: Hub | None = None,
        observer: Observer | None = None,
        acquire_timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._hub = hub
        self._observer = observer
        self._acquire_timeout = acquire_timeout

    async def _committed(self, order: Order, event: OrderEvent, since: datetime | None) -> None:
        if self._observer is not None:
            self._observer(order, event, since)
        if self._hub is not None:
            await self._hub.publish(event)

    async def insert_order(self, new: NewOrder, *, queued: bool) -> tuple[Order, OrderEvent]:
        """Persist a pending order and its first event; `queued` marks it for execution.

        Raises ClientOrderIdInUse when the wallet has an order of that clientOrderId.
        """
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            try:
                row = await conn.fetchrow(
                    _INSERT_ORDER,
                    uuid.uuid4(),
                    new.type.value,
                    new.user_wallet,
                    new.input_token,
                    new.output_token,
                    new.input_amount,
                    new.slippage_bps,
                    new.limit_price,
                    new.expires_at,
                    queued,
                    new.client_order_id,
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != _CLIENT_ORDER_ID_KEY or new.client_order_id is None:
                    raise
                existing = await conn.fetchval(
                    _CLIENT_ORDER_ID, new.user_wallet, new.client_order_id
                )
                raise ClientOrderIdInUse(new.client_order_id, existing) from None
        assert row is not None
        order = _order(row)
        event = OrderEvent(
            order_id=order.id,
            user_wallet=order.user_wallet,
            seq=1,
            status=OrderStatus.PENDING,
            timestamp=order.created_at,
            data={},
            client_order_id=order.client_order_id,
        )
        await self._committed(order, event, None)
        return order, event

    async def transition(
        self,
        order_id: uuid.UUID,
        new_status: OrderStatus,
        changes: Changes = Changes(),
        data: Mapping[str, Any] | None = None,
        *,
        since: datetime | None = None,
    ) -> tuple[Order, OrderEvent]:
        """Move an order to `new_status` and append its event, or change nothing.

        Raises StatusConflict when the current status does not lead to `new_status`,
        OrderNotFound when there is no such order. `since`: when the order's previous
        status began, for the step's duration.
        """
        order, event = await self._write(
            order_id, new_status, sources_of(new_status), changes, data
        )
        await self._committed(order, event, since)
        return order, event

    async def record(
        self,
        order_id: uuid.UUID,
        status: OrderStatus,
        changes: Changes = Changes(),
        data: Mapping[str, Any] | None = None,
    ) -> tuple[Order, OrderEvent]:
        """Append an event that keeps the order in `status` (a retry, a new quote), with
        its changes; StatusConflict if the order is no longer in `status`."""
        if status.is_terminal:
            raise ValueError(f"a {status} order takes no further events")
        order, event = await self._write(order_id, status, {status}, changes, data)
        await self._committed(order, event, None)
        return order, event

    async def _write(
        self,
        order_id: uuid.UUID,
        status: OrderStatus,
        sources: Iterable[OrderStatus],
        changes: Changes,
        data: Mapping[str, Any] | None,
    ) -> tuple[Order, OrderEvent]:
        event_data = dict(data or {})
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            row = await conn.fetchrow(
                _TRANSITION,
                order_id,
                status.value,
                [s.value for s in sources],
                changes.dex,
                changes.quoted_amount_out,
                changes.min_amount_out,
                changes.amount_out,
                changes.executed_price,
                changes.tx_hash,
                changes.attempts,
                changes.failure_code,
                changes.failure_reason,
                event_data,
                changes.forget_tx,
            )
            if row is None:
                current = await conn.fetchval(_GET_STATUS, order_id)
                if current is None:
                    raise OrderNotFound(order_id)
                raise StatusConflict(order_id, OrderStatus(current), status)
        order = _order(row)
        event = OrderEvent(
            order_id=order.id,
            user_wallet=order.user_wallet,
            seq=row["event_seq"],
            status=status,
            timestamp=order.updated_at,
            data=event_data,
            client_order_id=order.client_order_id,
        )
        return order, event

    async def mark_queued(self, order_id: uuid.UUID) -> Order:
        """Claim a pending, never-queued order for execution.

        Raises StatusConflict when it is queued already or no longer pending, OrderNotFound
        when there is no such order.
        """
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            row = await conn.fetchrow(_MARK_QUEUED, order_id)
            if row is None:
                current = await conn.fetchval(_GET_STATUS, order_id)
                if current is None:
                    raise OrderNotFound(order_id)
                status = OrderStatus(current)
                detail = (
                    "is queued for execution already" if status == "pending" else f"is {status}"
                )
                raise StatusConflict(
                    order_id,
                    status,
                    OrderStatus.ROUTING,
                    f"order {order_id} {detail}; only a pending order that was never "
                    "executed can be executed",
                )
        return _order(row)

    async def get_order(self, order_id: uuid.UUID) -> Order | None:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            row = await conn.fetchrow(_GET_ORDER, order_id)
        return None if row is None else _order(row)

    async def list_events(self, order_id: uuid.UUID, *, after_seq: int = 0) -> list[OrderEvent]:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_LIST_EVENTS, order_id, after_seq)
        return [_event(r) for r in rows]

    async def list_wallet_orders(
        self,
        wallet: str,
        *,
        limit: int,
        after: WalletCursor | None = None,
        status: OrderStatus | None = None,
        client_order_id: str | None = None,
    ) -> list[Order]:
        """A wallet's orders, newest first, starting after `after`, only in `status` and
        of `client_order_id` if given."""
        args: list[object] = [wallet, limit]
        if status is not None:
            args.append(status.value)
        if client_order_id is not None:
            args.append(client_order_id)
        if after is not None:
            args.extend((after.created_at, after.order_id))
        query = WALLET_ORDER_QUERIES[
            status is not None, after is not None, client_order_id is not None
        ]
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(query, *args)
        return [_order(r) for r in rows]

    async def list_stalled(self, *, idle_for: timedelta, limit: int) -> list[uuid.UUID]:
        """Queued, non-terminal orders unchanged for `idle_for`, longest idle first."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_LIST_STALLED, idle_for, limit)
        return [r["id"] for r in rows]

    async def ping(self) -> None:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            await conn.fetchval("SELECT 1")
