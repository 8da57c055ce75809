"""An order picked up again carries on from its stored status, sends the transaction it
stored, and never swaps twice; a transaction that can no longer land is rebuilt."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import asyncpg
import attrs
import pytest

from order_engine.api.appkeys import CHAIN_CLIENT, DB_POOL, HUB, ROUTER
from order_engine.chain.client import ChainClient
from order_engine.chain.model import Transaction, TxStatus, build_transaction
from order_engine.chain.venues import chain_venues
from order_engine.domain.events import Built, RetryScheduled, Routed, Submitted
from order_engine.domain.orders import Changes, FailureCode, Order, OrderStatus
from order_engine.domain.routes import RouteAsk
from order_engine.engine.execution import SPARE_SHARE, Executor
from order_engine.engine.retry import RetryPolicy
from order_engine.routing.router import Router, min_amount_out
from order_engine.routing.tokens import TOKENS
from order_engine.store.orders import OrderStore
from tests.conftest import AppClient
from tests.support import CountingVenue, new_order

NEW = new_order("3", slippage_bps=100)


@attrs.frozen
class Engine:
    """The app's own store, router and chain, driven by hand: the app's workers never see
    these orders, which are placed without being queued."""

    store: OrderStore
    executor: Executor
    chain: ChainClient
    router: Router

    async def routed(self, amount: str = "3") -> Order:
        """A new order, routed (its route stored) as a worker would have left it."""
        order, _ = await self.store.insert_order(new_order(amount, slippage_bps=100), queued=False)
        decision = await self.router.route(TOKENS["SOL"], TOKENS["USDC"], order.input_amount)
        route = decision.route
        moved, _ = await self.store.transition(
            order.id,
            OrderStatus.ROUTING,
            Routed(quotes=decision.quotes, route=route),
            Changes(dex=route.dex, quoted_amount_out=route.amount_out, route=route, attempts=1),
        )
        return moved

    def transaction(self, order: Order, *, built_slot: int) -> Transaction:
        assert order.route is not None
        minimum = min_amount_out(order.route.amount_out, order.slippage_bps, TOKENS["USDC"])
        return build_transaction(
            order.id,
            order.attempts,
            order.route.dex,
            order.input_token,
            order.output_token,
            order.input_amount,
            order.route.swap_legs(),
            minimum,
            built_slot,
        )

    async def built(self, order: Order, tx: Transaction) -> Order:
        """The order with `tx` stored, as a worker that died right after building left it."""
        moved, _ = await self.store.transition(
            order.id,
            OrderStatus.BUILDING,
            Built(dex=tx.dex, min_amount_out=tx.min_amount_out),
            Changes(min_amount_out=tx.min_amount_out, tx_hash=tx.signature, tx_slot=tx.built_slot),
        )
        return moved

    async def submitted(self, order: Order, tx: Transaction) -> Order:
        await self.built(order, tx)
        moved, _ = await self.store.transition(
            order.id, OrderStatus.SUBMITTED, Submitted(tx.signature)
        )
        return moved


async def make_engine(start_app: AppClient, **settings: object) -> Engine:
    client = await start_app(**settings)
    app = client.app
    store = OrderStore(app[DB_POOL], hub=app[HUB])
    retry = RetryPolicy(max_attempts=3, base_s=0.01, max_s=0.02)
    executor = Executor(store, app[ROUTER], app[CHAIN_CLIENT], retry=retry)
    return Engine(store, executor, app[CHAIN_CLIENT], app[ROUTER])


@pytest.fixture
async def engine(start_app: AppClient) -> Engine:
    return await make_engine(start_app)


async def landed(db: asyncpg.Connection, order_id: uuid.UUID) -> list[str]:
    rows = await db.fetch(
        "SELECT signature FROM chain_transactions WHERE order_id = $1 AND status = 'landed'",
        order_id,
    )
    return [r["signature"] for r in rows]


async def test_run_twice_swaps_once(engine: Engine, db: asyncpg.Connection) -> None:
    order, _ = await engine.store.insert_order(NEW, queued=False)
    first = (await engine.executor.run(order.id)).order
    again = (await engine.executor.run(order.id)).order
    assert first is not None
    assert again == first
    assert first.status is OrderStatus.CONFIRMED
    assert await landed(db, order.id) == [first.tx_hash]
    assert await db.fetchval("SELECT count(*) FROM order_events") == 5


async def test_a_run_given_a_stale_read_swaps_nothing_more(
    engine: Engine, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker reads the order while it waits for the lock: if an earlier delivery ends
    the order meanwhile, the run starts from a read that still says `pending`. Its first
    write conflicts, it reads the order again, and finds it confirmed."""
    order, _ = await engine.store.insert_order(NEW, queued=False)
    stale = engine.executor.head_start(order.id)
    assert (await stale.order) == order
    first = (await engine.executor.run(order.id)).order
    assert first is not None
    assert first.status is OrderStatus.CONFIRMED

    with caplog.at_level(logging.INFO, logger="order_engine.engine.execution"):
        again = (await engine.executor.run(order.id, head_start=stale)).order
    assert again == first
    assert f"order {order.id} is confirmed; it cannot become routing" in caplog.text
    assert await landed(db, order.id) == [first.tx_hash]
    assert await db.fetchval("SELECT count(*) FROM order_events") == 5


@pytest.fixture
def counted(engine: Engine) -> tuple[Executor, list[CountingVenue]]:
    """An executor whose router counts the calls (one a round) each venue gets."""
    venues = [CountingVenue(v) for v in chain_venues(lambda: engine.chain.market, quote_delay_s=0)]
    router = Router(venues, quote_timeout_s=5)
    return Executor(engine.store, router, engine.chain), venues


async def test_a_run_routes_with_the_quotes_its_head_start_asked_for(
    engine: Engine, db: asyncpg.Connection, counted: tuple[Executor, list[CountingVenue]]
) -> None:
    """A worker quotes a new market order from what its queue entry asks while it takes
    the order's lock: the run uses that decision, asks no venue again, and sends its
    route."""
    executor, venues = counted
    order, _ = await engine.store.insert_order(NEW, queued=False)
    head = executor.head_start(order.id, order.ask)
    assert head.decision is not None
    decision = await head.decision
    asked = [v.calls for v in venues]
    assert asked == [2, 2]  # the direct pairs and first hops, then the second hops

    done = (await executor.run(order.id, head_start=head)).order
    assert done is not None
    assert done.status is OrderStatus.CONFIRMED
    assert [v.calls for v in venues] == asked
    assert done.route == decision.route


async def test_a_head_start_reads_the_order_within_the_time_its_quotes_take(
    engine: Engine,
) -> None:
    """The read (and, in the worker, the lock) may wait to share a batch for a share of
    the shortest routing seen, none before the first: the order is read before its
    quotes are in, so the run waits no longer for it."""
    venues = chain_venues(lambda: engine.chain.market, quote_delay_s=0.05)
    executor = Executor(engine.store, Router(venues, quote_timeout_s=5), engine.chain)
    order, _ = await engine.store.insert_order(NEW, queued=False)
    first = executor.head_start(order.id, order.ask)
    assert first.spare_s == 0
    assert first.decision is not None
    await first.decision

    second = executor.head_start(order.id, order.ask)
    # Two quote rounds of 50 ms, less the clock's resolution.
    assert second.spare_s >= (0.1 - 0.002) * SPARE_SHARE
    assert second.decision is not None
    await second.decision
    assert second.order.done()
    assert second.order.result() == order


async def test_a_head_start_for_another_ask_or_a_routed_order_is_not_used(
    engine: Engine, db: asyncpg.Connection, counted: tuple[Executor, list[CountingVenue]]
) -> None:
    """The order as stored decides: quotes for another amount are dropped and the order
    is quoted for its own; an order already past `pending` goes on from its status."""
    executor, venues = counted
    order, _ = await engine.store.insert_order(NEW, queued=False)
    other = executor.head_start(order.id, RouteAsk("SOL", "USDC", order.input_amount * 2))
    assert other.decision is not None
    wrong = await other.decision
    done = (await executor.run(order.id, head_start=other)).order
    assert done is not None
    assert done.status is OrderStatus.CONFIRMED
    assert [v.calls for v in venues] == [4, 4]
    assert done.route is not None
    assert done.route.input_amount == order.input_amount != wrong.route.input_amount

    late = executor.head_start(order.id, order.ask)
    again = (await executor.run(order.id, head_start=late)).order
    assert again == done
    assert late.decision is not None
    assert late.decision.cancelled() or late.decision.done()
    assert await landed(db, order.id) == [done.tx_hash]


async def test_resumed_from_routing_builds_from_the_stored_route(
    engine: Engine, db: asyncpg.Connection
) -> None:
    """As if a worker died right after committing `routing`: the route stored then is the
    one sent, even though a fresh quote would differ after another swap moved the pool."""
    order = await engine.routed()
    assert order.route is not None
    other, _ = await engine.store.insert_order(new_order("500"), queued=False)
    moved = (await engine.executor.run(other.id)).order
    assert moved is not None
    assert moved.status is OrderStatus.CONFIRMED
    done = (await engine.executor.run(order.id)).order
    assert done is not None
    assert done.status is OrderStatus.CONFIRMED
    assert done.route == order.route
    statuses = await db.fetch(
        "SELECT status FROM order_events WHERE order_id = $1 ORDER BY seq", order.id
    )
    assert [e["status"] for e in statuses] == [
        "pending",
        "routing",
        "building",
        "submitted",
        "confirmed",
    ]


async def test_resumed_from_building_sends_the_stored_transaction(
    engine: Engine, db: asyncpg.Connection
) -> None:
    order = await engine.routed()
    tx = engine.transaction(order, built_slot=engine.chain.slot)
    await engine.built(order, tx)
    done = (await engine.executor.run(order.id)).order
    assert done is not None
    assert (done.status, done.tx_hash) == (OrderStatus.CONFIRMED, tx.signature)
    assert await landed(db, order.id) == [tx.signature]


async def test_submitted_order_whose_transaction_was_never_sent_sends_it_once(
    engine: Engine, db: asyncpg.Connection
) -> None:
    """`submitted` commits before the transaction goes out: a worker that died between
    the two left an order the chain never saw. Resuming asks the chain, sends the stored
    transaction, and it lands once."""
    order = await engine.routed()
    tx = engine.transaction(order, built_slot=engine.chain.slot)
    await engine.submitted(order, tx)
    assert await engine.chain.find(tx.signature) is None
    done = (await engine.executor.run(order.id)).order
    assert done is not None
    assert (done.status, done.tx_hash) == (OrderStatus.CONFIRMED, tx.signature)
    assert await landed(db, order.id) == [tx.signature]
    assert (
        await db.fetchval("SELECT count(*) FROM chain_transactions WHERE order_id = $1", order.id)
        == 1
    )


async def test_submitted_order_that_landed_is_confirmed_with_the_chains_figures(
    engine: Engine, db: asyncpg.Connection
) -> None:
    """The worker died after its transaction landed but before `confirmed` was written:
    sending it again only asks the chain, which answers with what it did."""
    order = await engine.routed()
    tx = engine.transaction(order, built_slot=engine.chain.slot)
    await engine.submitted(order, tx)
    result = await engine.chain.execute(tx)
    assert result.status is TxStatus.LANDED
    done = (await engine.executor.run(order.id)).order
    assert done is not None
    assert done.status is OrderStatus.CONFIRMED
    assert (done.amount_out, done.executed_price) == (result.amount_out, result.executed_price)
    assert (
        await db.fetchval("SELECT count(*) FROM chain_transactions WHERE order_id = $1", order.id)
        == 1
    )


async def test_abandoning_a_landed_split_order_confirms_it(
    engine: Engine, db: asyncpg.Connection
) -> None:
    """A dead-lettered order whose split transaction landed is confirmed, not failed."""
    order = await engine.routed("5000")
    assert order.dex == "split"
    tx = engine.transaction(order, built_slot=engine.chain.slot)
    await engine.submitted(order, tx)
    result = await engine.chain.execute(tx)
    done = await engine.executor.abandon(order.id, "delivered too often")
    assert done is not None
    assert (done.status, done.tx_hash, done.amount_out) == (
        OrderStatus.CONFIRMED,
        tx.signature,
        result.amount_out,
    )


async def test_abandoning_an_order_whose_transaction_never_arrived_waits_for_its_expiry(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    """Its transaction might still reach the chain until it expires: only then is the
    order failed, and the transaction can never land afterwards."""
    engine = await make_engine(start_app, chain_tx_expiry_slots=5)
    order = await engine.routed()
    tx = engine.transaction(order, built_slot=engine.chain.slot)
    await engine.submitted(order, tx)
    done = await engine.executor.abandon(order.id, "delivered too often")
    assert done is not None
    assert (done.status, done.failure_code) == (OrderStatus.FAILED, "dead_lettered")
    assert engine.chain.slot > tx.built_slot + 5
    assert (await engine.chain.execute(tx)).status is TxStatus.EXPIRED
    assert await landed(db, order.id) == []


async def test_transaction_held_back_past_its_expiry_never_lands_and_is_rebuilt_once(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    """A transaction built and stored, then held back (its worker stalled) until more than
    CHAIN_TX_EXPIRY_SLOTS slots passed: the chain refuses it, and the order builds a new
    one, which lands. One swap in all."""
    # The new transaction must land within the expiry too: 50 slots of 10 ms leave it room
    # on a loaded machine, where 3 did not.
    expiry = 50
    engine = await make_engine(start_app, chain_tx_expiry_slots=expiry)
    order = await engine.routed()
    stale = engine.transaction(order, built_slot=engine.chain.slot)
    await engine.submitted(order, stale)
    await engine.chain.wait_for_slot(stale.built_slot + expiry + 1)

    first = await engine.executor.run(order.id)
    assert first.retry_in_s is not None
    assert first.order is not None
    assert (first.order.status, first.order.tx_hash) == (OrderStatus.SUBMITTED, None)
    done = (await engine.executor.run(order.id)).order
    assert done is not None
    assert done.status is OrderStatus.CONFIRMED
    assert done.tx_hash != stale.signature
    assert await landed(db, order.id) == [done.tx_hash]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM chain_transactions WHERE signature = $1", stale.signature
        )
        == 0
    )
    retries = [
        e.data
        for e in await engine.store.list_events(order.id)
        if isinstance(e.data, RetryScheduled)
    ]
    assert [(r.code, r.attempt) for r in retries] == [(FailureCode.TX_EXPIRED, 2)]


async def test_transaction_not_applied_within_its_expiry_is_expired_by_the_chain(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    """Sent in time but not due before its expiry (the DEX takes longer than the expiry
    window): the slot that passes its expiry marks it expired; it never lands."""
    engine = await make_engine(start_app, chain_tx_expiry_slots=3, mock_dex_execution_delay_ms=5000)
    order = await engine.routed()
    tx = engine.transaction(order, built_slot=engine.chain.slot)
    result = await engine.chain.execute(tx)
    assert result.status is TxStatus.EXPIRED
    assert result.slot is not None
    assert result.slot > tx.built_slot + 3
    row = await db.fetchrow(
        "SELECT status, amount_out FROM chain_transactions WHERE signature = $1", tx.signature
    )
    assert row is not None
    assert (row["status"], row["amount_out"]) == ("expired", None)
    reserves = await db.fetchval(
        "SELECT reserve_a FROM chain_pools WHERE dex = 'meteora' AND token_a = 'SOL'"
        " AND token_b = 'USDC'"
    )
    assert reserves == Decimal("30000")
