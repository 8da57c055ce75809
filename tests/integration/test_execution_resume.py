"""An order picked up again carries on from its stored status and never swaps twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import attrs
import pytest
import redis.asyncio as aioredis

from order_engine.chain.ledger import SimulatedChain
from order_engine.chain.market import simulated_venues
from order_engine.domain.orders import Changes, OrderStatus
from order_engine.engine.execution import Executor
from order_engine.hub import Hub
from order_engine.routing.router import Router
from order_engine.store.orders import OrderStore, create_pool
from tests.support import new_order

NEW = new_order("3", slippage_bps=100)


@attrs.frozen
class Engine:
    store: OrderStore
    executor: Executor


@pytest.fixture
async def engine(db_url: str, redis: aioredis.Redis, redis_prefix: str) -> AsyncIterator[Engine]:
    pool = await create_pool(db_url, min_size=1, max_size=5, command_timeout=10)
    hub = Hub(redis, f"{redis_prefix}events", buffer_size=16)
    store = OrderStore(pool, hub=hub)
    chain = SimulatedChain(pool)
    venues = simulated_venues(chain, quote_delay_s=0, execution_delay_s=0, failure_rate=0, seed=1)
    router = Router(venues, quote_timeout_s=1)
    yield Engine(store, Executor(store, router))
    await pool.close()


async def submitted_and_settled(
    engine: Engine, db: asyncpg.Connection, order_id: uuid.UUID, signature: str, dex: str
) -> None:
    """A routed order built and sent as `signature`, whose swap the chain settled (448.5
    USDC for 3 SOL) before the worker could write `confirmed`."""
    await engine.store.transition(
        order_id, OrderStatus.BUILDING, Changes(min_amount_out=Decimal("1"), tx_hash=signature)
    )
    await engine.store.transition(order_id, OrderStatus.SUBMITTED)
    await db.execute(
        """
        INSERT INTO chain_swaps (signature, order_id, dex, input_token, output_token,
                                 input_amount, amount_out, executed_price)
        VALUES ($1, $2, $3, 'SOL', 'USDC', 3, 448.5, 149.5)
        """,
        signature,
        order_id,
        dex,
    )


async def test_run_twice_swaps_once(engine: Engine, db: asyncpg.Connection) -> None:
    order, _ = await engine.store.insert_order(NEW, queued=True)
    first = (await engine.executor.run(order.id)).order
    again = (await engine.executor.run(order.id)).order
    assert first is not None
    assert again == first
    assert first.status is OrderStatus.CONFIRMED
    assert await db.fetchval("SELECT count(*) FROM chain_swaps") == 1
    assert await db.fetchval("SELECT count(*) FROM order_events") == 5


@pytest.mark.parametrize("stopped_at", [OrderStatus.ROUTING, OrderStatus.BUILDING])
async def test_resumes_from_a_stored_status(
    engine: Engine, db: asyncpg.Connection, stopped_at: OrderStatus
) -> None:
    """As if a worker died right after committing `stopped_at`."""
    order, _ = await engine.store.insert_order(NEW, queued=True)
    await engine.store.transition(
        order.id,
        OrderStatus.ROUTING,
        Changes(dex="raydium", quoted_amount_out=Decimal("440"), attempts=1),
    )
    if stopped_at is OrderStatus.BUILDING:
        await engine.store.transition(
            order.id,
            OrderStatus.BUILDING,
            Changes(min_amount_out=Decimal("435.6"), tx_hash="sig-from-before-the-crash"),
        )
    done = (await engine.executor.run(order.id)).order
    assert done is not None
    assert done.status is OrderStatus.CONFIRMED
    assert done.dex == "raydium"  # the stored route, not a fresh one
    events = await db.fetch("SELECT seq, status FROM order_events ORDER BY seq")
    assert [e["status"] for e in events] == [
        "pending",
        "routing",
        "building",
        "submitted",
        "confirmed",
    ]
    if stopped_at is OrderStatus.BUILDING:
        assert done.tx_hash == "sig-from-before-the-crash"
    swaps = await db.fetch("SELECT signature FROM chain_swaps")
    assert [s["signature"] for s in swaps] == [done.tx_hash]


async def test_submitted_order_already_settled_is_confirmed_without_sending_again(
    engine: Engine, db: asyncpg.Connection
) -> None:
    """The worker died after the chain settled the swap but before `confirmed` was written:
    the chain is asked first, and its receipt confirms the order."""
    order, _ = await engine.store.insert_order(NEW, queued=True)
    await engine.store.transition(
        order.id, OrderStatus.ROUTING, Changes(dex="meteora", quoted_amount_out=Decimal("449"))
    )
    await submitted_and_settled(engine, db, order.id, "sig-1", "meteora")
    done = (await engine.executor.run(order.id)).order
    assert done is not None
    assert done.status is OrderStatus.CONFIRMED
    assert done.amount_out == Decimal("448.5")
    assert done.executed_price == Decimal("149.5")
    assert await db.fetchval("SELECT count(*) FROM chain_swaps") == 1


async def test_abandoning_a_settled_split_order_confirms_it(
    engine: Engine, db: asyncpg.Connection
) -> None:
    """A dead-lettered order whose split swap went through is confirmed from the chain,
    not failed: the transaction is found through the venue of its first leg."""
    order, _ = await engine.store.insert_order(NEW, queued=True)
    legs = [
        {"dex": "raydium", "inputToken": "SOL", "outputToken": "USDC", "inputAmount": "2"},
        {"dex": "meteora", "inputToken": "SOL", "outputToken": "USDC", "inputAmount": "1"},
    ]
    await engine.store.transition(
        order.id,
        OrderStatus.ROUTING,
        Changes(dex="split", quoted_amount_out=Decimal("449")),
        {"dex": "split", "route": {"kind": "split", "amountOut": "449", "legs": legs}},
    )
    await submitted_and_settled(engine, db, order.id, "sig-split", "split")
    done = await engine.executor.abandon(order.id, "delivered too often")
    assert done is not None
    assert (done.status, done.tx_hash, done.amount_out) == (
        OrderStatus.CONFIRMED,
        "sig-split",
        Decimal("448.5"),
    )
