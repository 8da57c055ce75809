"""Status transitions in Postgres: atomic, conditional, gapless."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal

import asyncpg
import pytest

from order_engine.domain.errors import OrderNotFound, StatusConflict
from order_engine.domain.events import Accepted, Built, Cancelled, OrderEvent, Submitted
from order_engine.domain.orders import Changes, OrderStatus
from order_engine.store.orders import OrderStore, create_pool
from tests.support import new_order

NEW = new_order("2.5", slippage_bps=50)
# A payload for tests about the status alone.
NOTE = Cancelled(reason="test")


async def test_transition_appends_the_next_event_with_its_data(store: OrderStore) -> None:
    order, first = await store.insert_order(NEW, queued=True)
    assert (first.seq, first.status) == (1, OrderStatus.PENDING)
    built = Built(dex="raydium", min_amount_out=Decimal("370.123456"))
    moved, event = await store.transition(
        order.id, OrderStatus.ROUTING, built, Changes(dex="raydium", attempts=1)
    )
    assert moved.status is OrderStatus.ROUTING
    assert moved.dex == "raydium"
    assert moved.input_amount == Decimal("2.5")
    assert (event.seq, event.data) == (2, built)
    events = await store.list_events(order.id)
    assert [(e.seq, e.status, e.data) for e in events] == [
        (1, OrderStatus.PENDING, Accepted()),
        (2, OrderStatus.ROUTING, built),
    ]


async def test_forbidden_transition_is_a_conflict_and_changes_nothing(
    store: OrderStore, db: asyncpg.Connection
) -> None:
    order, _ = await store.insert_order(NEW, queued=True)
    with pytest.raises(StatusConflict) as caught:
        await store.transition(order.id, OrderStatus.CONFIRMED, NOTE, Changes(dex="meteora"))
    assert caught.value.current is OrderStatus.PENDING
    row = await db.fetchrow("SELECT status, dex, last_seq FROM orders WHERE id = $1", order.id)
    assert row is not None
    assert dict(row) == {"status": "pending", "dex": None, "last_seq": 1}
    assert await db.fetchval("SELECT count(*) FROM order_events") == 1


async def test_terminal_status_cannot_be_left(store: OrderStore) -> None:
    order, _ = await store.insert_order(NEW, queued=True)
    await store.transition(order.id, OrderStatus.FAILED, NOTE, Changes(failure_code="x"))
    with pytest.raises(StatusConflict):
        await store.transition(order.id, OrderStatus.FAILED, NOTE)
    with pytest.raises(StatusConflict):
        await store.transition(order.id, OrderStatus.ROUTING, NOTE)


async def test_unknown_order_is_not_found(store: OrderStore) -> None:
    with pytest.raises(OrderNotFound):
        await store.transition(uuid.uuid4(), OrderStatus.ROUTING, NOTE)


async def test_a_statement_first_run_on_an_empty_table_uses_the_index_once_it_has_grown(
    db_url: str, db: asyncpg.Connection
) -> None:
    """A pooled connection prepares a statement once and keeps it, and PostgreSQL keeps
    the generic plan made at its sixth run, here while `orders` was empty: with
    sequential scans allowed, that plan scans the whole table for every read after it
    grew. The pool's connections also never compile a plan (JIT)."""
    by_ids = "SELECT id FROM orders WHERE id = ANY($1::uuid[])"
    pool = await create_pool(db_url, min_size=1, max_size=1, command_timeout=10)
    try:
        async with pool.acquire() as conn:
            for _ in range(8):
                assert await conn.fetch(by_ids, [uuid.uuid4()]) == []
            await db.execute(
                "INSERT INTO orders (id, type, status, user_wallet, input_token, output_token,"
                " input_amount, slippage_bps)"
                " SELECT gen_random_uuid(), 'market', 'confirmed', 'w' || n, 'SOL', 'USDC', 1, 50"
                " FROM generate_series(1, 20000) AS n"
            )
            name = await conn.fetchval(
                "SELECT name FROM pg_prepared_statements WHERE statement = $1", by_ids
            )
            plan = "\n".join(
                row[0] for row in await conn.fetch(f"EXPLAIN EXECUTE {name}('{{{uuid.uuid4()}}}')")
            )
            costly = "\n".join(
                row[0]
                for row in await conn.fetch(
                    "EXPLAIN SELECT count(*) FROM generate_series(1, 10000000) AS a,"
                    " generate_series(1, 1000) AS b WHERE a < b"
                )
            )
    finally:
        await pool.close()
    assert "Index" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "JIT" not in costly, costly


async def test_racing_transitions_exactly_one_wins(
    store: OrderStore, db: asyncpg.Connection
) -> None:
    order, _ = await store.insert_order(NEW, queued=True)
    results = await asyncio.gather(
        *(store.transition(order.id, OrderStatus.ROUTING, NOTE) for _ in range(20)),
        *(store.transition(order.id, OrderStatus.FAILED, NOTE) for _ in range(20)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    conflicts = [r for r in results if isinstance(r, StatusConflict)]
    # One of the first moves wins; a FAILED after a ROUTING win is still allowed once.
    assert len(winners) in (1, 2)
    assert len(winners) + len(conflicts) == 40
    seqs = [r["seq"] for r in await db.fetch("SELECT seq FROM order_events ORDER BY seq")]
    assert seqs == list(range(1, len(winners) + 2))


async def test_a_batch_commits_every_transition_but_the_conflicting_one(
    store: OrderStore, db: asyncpg.Connection
) -> None:
    """Transitions asked for in one turn of the loop are one statement: the one whose
    order cannot make its move gets its own conflict, the others commit."""
    orders = [(await store.insert_order(NEW, queued=True))[0] for _ in range(5)]
    await store.transition(orders[2].id, OrderStatus.FAILED, NOTE)
    results = await asyncio.gather(
        *(store.transition(o.id, OrderStatus.ROUTING, NOTE) for o in orders),
        return_exceptions=True,
    )
    conflict = results.pop(2)
    assert isinstance(conflict, StatusConflict)
    assert conflict.current is OrderStatus.FAILED
    assert all(
        not isinstance(r, BaseException) and r[0].status is OrderStatus.ROUTING for r in results
    )
    statuses = await db.fetch("SELECT id, status, last_seq FROM orders")
    assert sorted((r["status"], r["last_seq"]) for r in statuses) == [
        ("failed", 2),
        *[("routing", 2)] * 4,
    ]


async def test_two_changes_of_one_order_in_one_turn_are_applied_one_after_the_other(
    store: OrderStore,
) -> None:
    """One UPDATE changes a row once: the second change of an order waits for the next
    batch instead of being lost, and both events keep their seq."""
    order, _ = await store.insert_order(NEW, queued=True)
    first, second = await asyncio.gather(
        store.transition(order.id, OrderStatus.ROUTING, NOTE),
        store.record(order.id, OrderStatus.ROUTING, NOTE),
    )
    assert (first[1].seq, second[1].seq) == (2, 3)


async def test_a_status_passed_through_commits_with_its_own_event_and_seq(
    db_url: str, db: asyncpg.Connection
) -> None:
    """`via`: routing, building and submitted in one commit, three events with
    consecutive seqs, told to the observer in order, and the order left in the last."""
    told: list[tuple[OrderEvent, datetime | None]] = []
    pool = await create_pool(db_url, min_size=1, max_size=2, command_timeout=10)
    store = OrderStore(pool, observer=lambda _, event, since: told.append((event, since)))
    order, _ = await store.insert_order(NEW, queued=True)
    built = Built(dex="raydium", min_amount_out=Decimal("1.5"))
    sent = Submitted(tx_hash="sig")
    moved, event = await store.transition(
        order,
        OrderStatus.SUBMITTED,
        sent,
        Changes(dex="raydium", min_amount_out=Decimal("1.5"), tx_hash="sig"),
        since=order.updated_at,
        via=((OrderStatus.ROUTING, NOTE), (OrderStatus.BUILDING, built)),
    )
    assert (moved.status, moved.dex, moved.tx_hash, event.seq, event.status) == (
        OrderStatus.SUBMITTED,
        "raydium",
        "sig",
        4,
        OrderStatus.SUBMITTED,
    )
    stored = [(e.seq, e.status, e.data) for e in await store.list_events(order.id)]
    assert stored == [
        (1, OrderStatus.PENDING, Accepted()),
        (2, OrderStatus.ROUTING, NOTE),
        (3, OrderStatus.BUILDING, built),
        (4, OrderStatus.SUBMITTED, sent),
    ]
    # The routing step lasted from the order's creation, the others no time.
    assert [(e.seq, e.status, since) for e, since in told[1:]] == [
        (2, OrderStatus.ROUTING, order.updated_at),
        (3, OrderStatus.BUILDING, moved.updated_at),
        (4, OrderStatus.SUBMITTED, moved.updated_at),
    ]
    assert await db.fetchval("SELECT last_seq FROM orders WHERE id = $1", order.id) == 4
    await pool.close()


async def test_a_pass_through_from_a_status_that_cannot_enter_it_writes_nothing(
    store: OrderStore, db: asyncpg.Connection
) -> None:
    """A cancelled order cannot pass through routing: the caller gets the conflict with
    the status it found and the one it wanted first, and no event is written."""
    order, _ = await store.insert_order(NEW, queued=True)
    await store.transition(order.id, OrderStatus.CANCELLED, NOTE)
    with pytest.raises(StatusConflict) as caught:
        await store.transition(
            order,
            OrderStatus.SUBMITTED,
            NOTE,
            via=((OrderStatus.ROUTING, NOTE), (OrderStatus.BUILDING, NOTE)),
        )
    assert (caught.value.current, caught.value.wanted) == (
        OrderStatus.CANCELLED,
        OrderStatus.ROUTING,
    )
    assert await db.fetchval("SELECT count(*) FROM order_events") == 2
    with pytest.raises(ValueError, match="routing does not lead to confirmed"):
        await store.transition(
            order, OrderStatus.CONFIRMED, NOTE, via=((OrderStatus.ROUTING, NOTE),)
        )
    with pytest.raises(ValueError, match="routing does not lead to submitted"):
        await store.transition(
            order,
            OrderStatus.BUILDING,
            NOTE,
            via=((OrderStatus.ROUTING, NOTE), (OrderStatus.SUBMITTED, NOTE)),
        )
