"""Status transitions in Postgres: atomic, conditional, gapless."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import pytest

from order_engine.domain.errors import OrderNotFound, StatusConflict
from order_engine.domain.orders import Changes, OrderStatus
from order_engine.store.orders import OrderStore
from tests.support import new_order

NEW = new_order("2.5", slippage_bps=50)


async def test_transition_appends_the_next_event_with_its_data(store: OrderStore) -> None:
    order, first = await store.insert_order(NEW, queued=True)
    assert (first.seq, first.status) == (1, OrderStatus.PENDING)
    moved, event = await store.transition(
        order.id, OrderStatus.ROUTING, Changes(dex="raydium", attempts=1), {"dex": "raydium"}
    )
    assert moved.status is OrderStatus.ROUTING
    assert moved.dex == "raydium"
    assert moved.input_amount == Decimal("2.5")
    assert (event.seq, event.data) == (2, {"dex": "raydium"})
    events = await store.list_events(order.id)
    assert [(e.seq, e.status, e.data) for e in events] == [
        (1, OrderStatus.PENDING, {}),
        (2, OrderStatus.ROUTING, {"dex": "raydium"}),
    ]


async def test_forbidden_transition_is_a_conflict_and_changes_nothing(
    store: OrderStore, db: asyncpg.Connection
) -> None:
    order, _ = await store.insert_order(NEW, queued=True)
    with pytest.raises(StatusConflict) as caught:
        await store.transition(order.id, OrderStatus.CONFIRMED, Changes(dex="meteora"))
    assert caught.value.current is OrderStatus.PENDING
    row = await db.fetchrow("SELECT status, dex, last_seq FROM orders WHERE id = $1", order.id)
    assert row is not None
    assert dict(row) == {"status": "pending", "dex": None, "last_seq": 1}
    assert await db.fetchval("SELECT count(*) FROM order_events") == 1


async def test_terminal_status_cannot_be_left(store: OrderStore) -> None:
    order, _ = await store.insert_order(NEW, queued=True)
    await store.transition(order.id, OrderStatus.FAILED, Changes(failure_code="x"))
    with pytest.raises(StatusConflict):
        await store.transition(order.id, OrderStatus.FAILED)
    with pytest.raises(StatusConflict):
        await store.transition(order.id, OrderStatus.ROUTING)


async def test_unknown_order_is_not_found(store: OrderStore) -> None:
    with pytest.raises(OrderNotFound):
        await store.transition(uuid.uuid4(), OrderStatus.ROUTING)


async def test_racing_transitions_exactly_one_wins(
    store: OrderStore, db: asyncpg.Connection
) -> None:
    order, _ = await store.insert_order(NEW, queued=True)
    results = await asyncio.gather(
        *(store.transition(order.id, OrderStatus.ROUTING) for _ in range(20)),
        *(store.transition(order.id, OrderStatus.FAILED) for _ in range(20)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    conflicts = [r for r in results if isinstance(r, StatusConflict)]
    # One of the first moves wins; a FAILED after a ROUTING win is still allowed once.
    assert len(winners) in (1, 2)
    assert len(winners) + len(conflicts) == 40
    seqs = [r["seq"] for r in await db.fetch("SELECT seq FROM order_events ORDER BY seq")]
    assert seqs == list(range(1, len(winners) + 2))
