"""The chain as an engine process sees it: slots produced by another process, summaries
that go missing, and genesis."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from order_engine.api.appkeys import CHAIN_CLIENT
from order_engine.chain.ledger import Ledger
from order_engine.chain.market import genesis_pools
from order_engine.chain.model import (
    SlotSummary,
    Transaction,
    TxFailure,
    TxStatus,
    build_transaction,
)
from order_engine.chain.slots import SlotConfig, SlotProducer
from order_engine.domain.routes import SwapLeg
from order_engine.leader import LEADER_CLASS, Leadership, Role
from order_engine.store.orders import create_pool
from tests.conftest import AppClient
from tests.support import execute, follow_order


@contextlib.asynccontextmanager
async def own_producer(
    db_url: str,
    redis: aioredis.Redis,
    channel: str,
    config: SlotConfig,
    *,
    name: str,
    on_summary: Callable[[SlotSummary], None] = lambda _: None,
    on_closed: Callable[[SlotSummary, float], None] | None = None,
) -> AsyncIterator[tuple[SlotProducer, Ledger]]:
    """A slot producer with a pool and a lead of its own, as another process's would
    have, leading on a chain at genesis; and that chain's ledger."""
    pool = await create_pool(db_url, min_size=1, max_size=3, command_timeout=10)
    leadership = Leadership(db_url, Role.SLOT_PRODUCER, timeout_s=5)
    try:
        assert await leadership.try_lead()
        ledger = Ledger(pool)
        await ledger.genesis(genesis_pools(), seed=7)
        producer = SlotProducer(
            pool,
            redis,
            channel,
            leadership,
            config,
            name=name,
            on_summary=on_summary,
            on_closed=on_closed,
        )
        yield producer, ledger
    finally:
        await leadership.close()
        await pool.close()


@pytest.fixture
async def outside_producer(
    db_url: str, redis: aioredis.Redis, redis_prefix: str
) -> AsyncIterator[SlotProducer]:
    """Another process's slot producer, leading before the app under test starts, so
    that the app only hears of slots through Redis."""
    config = SlotConfig(slot_s=0.01, execution_delay_s=0.0)
    async with own_producer(db_url, redis, f"{redis_prefix}chain", config, name="elsewhere") as (
        producer,
        _,
    ):
        await producer.start()
        yield producer
        await producer.stop()


async def test_confirmation_and_the_view_survive_lost_summaries(
    outside_producer: SlotProducer, start_app: AppClient, db: asyncpg.Connection
) -> None:
    """Every summary is dropped on its way to this process while its order executes:
    the order is still confirmed, by asking the chain about its signature; once summaries
    arrive again, the gap in slot numbers makes the view reload and match the chain."""
    client = await start_app()
    chain = client.app[CHAIN_CLIENT]
    apply = chain.apply
    dropped: list[int] = []

    def lossy(summary: SlotSummary) -> None:
        dropped.append(summary.slot)

    chain.apply = lossy  # type: ignore[method-assign]
    accepted = await execute(client, inputAmount="100")
    messages = await follow_order(client, accepted["orderId"])
    assert messages[-1]["status"] == "confirmed"
    stale = chain.slot
    assert dropped, "no summary was dropped: the fallback was not exercised"
    assert stale < dropped[-1]
    stale_reserve = chain.market.pool("raydium", "SOL", "USDC").reserve_a

    chain.apply = apply  # type: ignore[method-assign]
    await chain.wait_for_slot(dropped[-1] + 1)
    row = await db.fetchrow(
        "SELECT reserve_a FROM chain_pools WHERE dex = 'raydium' AND token_a = 'SOL'"
        " AND token_b = 'USDC'"
    )
    assert row is not None
    assert chain.market.pool("raydium", "SOL", "USDC").reserve_a == row["reserve_a"]
    assert row["reserve_a"] == stale_reserve + Decimal(100)


async def test_genesis_happens_once_whoever_starts_first(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    await start_app()
    await start_app()
    assert await db.fetchval("SELECT count(*) FROM chain_slots WHERE producer = 'genesis'") == 1
    assert await db.fetchval("SELECT count(*) FROM chain_pools") == len(genesis_pools())


async def test_a_producer_whose_lock_connection_dies_takes_the_lead_again(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    """Postgres drops the connection that holds the producer's lock (a restart, an
    admin's kill): the producer takes the lead again on a new connection, and slots go on
    without a gap or a repeat."""
    client = await start_app()
    chain = client.app[CHAIN_CLIENT]
    await chain.wait_for_slot(3)
    killed = await db.fetchval(
        """
        SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND granted
        """,
        LEADER_CLASS,
        Role.SLOT_PRODUCER,
    )
    assert killed
    before = chain.slot
    async with asyncio.timeout(10):
        await chain.wait_for_slot(before + 5)
    slots = [r["slot"] for r in await db.fetch("SELECT slot FROM chain_slots ORDER BY slot")]
    assert slots == list(range(len(slots)))


async def test_a_second_swap_for_an_order_that_already_landed_is_refused(
    start_app: AppClient,
) -> None:
    """Two builds of one order reach the chain (a resend after a crash, rebuilt at a later
    slot): the first lands, the second is refused by the slot that finds the order's
    landed swap, so an order never trades twice; another order in that slot still lands."""
    client = await start_app()
    chain = client.app[CHAIN_CLIENT]
    await chain.wait_for_slot(1)
    leg = SwapLeg("raydium", "SOL", "USDC", Decimal("0.1"))

    def build(order_id: uuid.UUID, attempt: int) -> Transaction:
        return build_transaction(
            order_id,
            attempt,
            "raydium",
            "SOL",
            "USDC",
            Decimal("0.1"),
            (leg,),
            Decimal(0),
            chain.slot,
        )

    twice, once = uuid.uuid4(), uuid.uuid4()
    first = await chain.execute(build(twice, 1))
    assert first.status is TxStatus.LANDED
    second, other = await asyncio.gather(
        chain.execute(build(twice, 2)), chain.execute(build(once, 1))
    )
    assert second.status is TxStatus.FAILED
    assert second.failure is TxFailure.REFUSED
    assert second.reason == f"order {twice} already has a landed swap"
    assert other.status is TxStatus.LANDED


async def test_a_seeded_launch_is_listed_by_the_slot_that_launches_it(
    db_url: str, redis: aioredis.Redis, redis_prefix: str, db: asyncpg.Connection
) -> None:
    """With the launch timer at every slot, each slot lists one new pool for a token that
    had none, trading from that slot, and its summary names it; the chain's tables and
    the summaries agree."""
    async with own_producer(
        db_url, redis, f"{redis_prefix}chain", SlotConfig(launch_every=1), name="launcher"
    ) as (producer, _):
        summaries = [await producer.produce() for _ in range(2)]
    rows = await db.fetch(
        "SELECT id, launched_slot FROM chain_pools WHERE launched_slot > 0 ORDER BY id"
    )
    assert [(r["id"], r["launched_slot"]) for r in rows] == [
        (s.launched[0].id, s.slot) for s in summaries
    ]
    assert [len(s.launched) for s in summaries] == [1, 1]
    assert summaries[0].launched[0].token_a != summaries[1].launched[0].token_a


async def test_a_slot_started_before_its_time_takes_what_is_due_by_then_and_is_announced_then(
    db_url: str, redis: aioredis.Redis, redis_prefix: str, db: asyncpg.Connection
) -> None:
    """The producer starts a slot's work ahead of the slot's time: a slot applies a
    transaction due by its time though not yet when its work starts (an earlier slot, due
    before it, leaves it), and neither its own process (its view, its trigger watcher)
    nor another (through Redis) hears of the slot before its time (to the millisecond of
    the loop's timers)."""
    heard: list[float] = []
    watched: list[float] = []
    channel = f"{redis_prefix}chain"
    leg = SwapLeg("raydium", "SOL", "USDC", Decimal("0.1"))
    tx = build_transaction(
        uuid.uuid4(), 1, "raydium", "SOL", "USDC", Decimal("0.1"), (leg,), Decimal(0), 0
    )
    received: list[float] = []
    both = asyncio.Event()

    async def listen(tap: PubSub) -> None:
        while True:
            message = await tap.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is not None:
                received.append(time.monotonic())
                if len(received) == 2:
                    both.set()

    async with (
        own_producer(
            db_url,
            redis,
            channel,
            SlotConfig(execution_delay_s=0.3),
            name="early",
            on_summary=lambda _: heard.append(time.monotonic()),
            on_closed=lambda _, __: watched.append(time.monotonic()),
        ) as (producer, ledger),
        redis.pubsub() as tap,
    ):
        await tap.subscribe(channel)
        listener = asyncio.create_task(listen(tap))
        assert producer.lead() == 0.0
        assert await ledger.send(tx, expiry_slots=150) is not None

        too_soon = await producer.produce(closes_at=time.monotonic() + 0.1)
        assert too_soon.outcomes == ()

        closes_at = time.monotonic() + 0.35
        summary = await producer.produce(closes_at=closes_at)
        async with asyncio.timeout(5):
            await both.wait()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        assert 0.0 < producer.lead() <= 0.2
    assert [o.status for o in summary.outcomes] == [TxStatus.LANDED]
    # uvloop's timers count whole milliseconds.
    assert heard[-1] >= closes_at - 0.002
    assert watched[-1] >= closes_at - 0.002
    assert received[-1] >= closes_at - 0.002
    due_by = await db.fetchval(
        "SELECT s.closed_at >= t.sent_at + interval '0.3 seconds' FROM chain_slots s,"
        " chain_transactions t WHERE s.slot = $1 AND t.signature = $2",
        summary.slot,
        tx.signature,
    )
    assert due_by
