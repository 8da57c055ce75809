"""The pieces of recovery against the real Redis and Postgres: reclaiming, renewing, the
retry schedule, dead letters, advisory locks and the reconciler."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import cast

import asyncpg
import pytest
import redis.asyncio as aioredis

from order_engine.domain.events import Failed
from order_engine.domain.orders import Changes, OrderStatus
from order_engine.domain.routes import RouteAsk
from order_engine.engine.locks import AdvisoryLocks
from order_engine.engine.reconciler import Reconciler
from order_engine.leader import Leadership, Role
from order_engine.queue import GROUP, OrderQueue
from order_engine.store.orders import OrderStore
from tests.conftest import REDIS_URL, AppClient
from tests.support import execute, follow_order, new_order

NEW = new_order("1", slippage_bps=100)

QueueFor = Callable[[str], OrderQueue]


@pytest.fixture
async def queue_for(redis_prefix: str) -> AsyncIterator[QueueFor]:
    """Queues on one stream under different consumer names, as separate processes are."""
    clients: list[aioredis.Redis] = []

    def make(consumer: str) -> OrderQueue:
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        clients.append(client)
        return OrderQueue(client, client, stream=f"{redis_prefix}orders", consumer=consumer)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def locks_for(db_url: str) -> AsyncIterator[Callable[[], AdvisoryLocks]]:
    made: list[AdvisoryLocks] = []

    def make() -> AdvisoryLocks:
        made.append(AdvisoryLocks(db_url, timeout_s=5))
        return made[-1]

    yield make
    for locks in made:
        await locks.close()


async def test_reclaim_takes_idle_entries_of_a_dead_consumer_and_counts_deliveries(
    queue_for: QueueFor,
) -> None:
    dead, alive = queue_for("dead"), queue_for("alive")
    await dead.ensure_group()
    order_id = uuid.uuid4()
    await dead.enqueue(order_id)
    [taken] = await dead.read(10, block_ms=100)
    assert taken.deliveries == 1

    assert await alive.reclaim(min_idle_ms=60_000, count=10) == []  # not idle long enough
    [reclaimed] = await alive.reclaim(min_idle_ms=0, count=10)
    assert (reclaimed.entry_id, reclaimed.order_id, reclaimed.deliveries) == (
        taken.entry_id,
        order_id,
        2,
    )


async def test_renewing_keeps_an_entry_from_being_reclaimed(queue_for: QueueFor) -> None:
    owner, other = queue_for("owner"), queue_for("other")
    await owner.ensure_group()
    await owner.enqueue(uuid.uuid4())
    [entry] = await owner.read(10, block_ms=100)
    await asyncio.sleep(0.5)  # idle time is wall-clock time: it has to pass
    await owner.renew([entry.entry_id])
    assert await other.reclaim(min_idle_ms=400, count=10) == []
    await asyncio.sleep(0.5)
    assert [e.entry_id for e in await other.reclaim(min_idle_ms=400, count=10)] == [entry.entry_id]


async def test_a_restarted_consumer_takes_back_its_own_unfinished_entries(
    queue_for: QueueFor,
) -> None:
    before = queue_for("worker-1")
    await before.ensure_group()
    ids = [uuid.uuid4() for _ in range(3)]
    for order_id in ids:
        await before.enqueue(order_id)
    entries = await before.read(10, block_ms=100)
    await before.ack(entries[0].entry_id)

    after = queue_for("worker-1")
    first = await after.read_own_pending(1)
    rest = await after.read_own_pending(10, after=first[-1].entry_id)
    assert [e.order_id for e in first + rest] == ids[1:]
    assert {e.deliveries for e in first + rest} == {2}


async def test_retries_move_to_the_stream_only_when_due_and_count_as_live(
    queue_for: QueueFor, redis: aioredis.Redis
) -> None:
    queue = queue_for("w")
    await queue.ensure_group()
    due, later = uuid.uuid4(), uuid.uuid4()
    for order_id in (due, later):
        await queue.enqueue(order_id)
    first, second = await queue.read(10, block_ms=100)
    now_ms = int(time.time() * 1000)
    await queue.schedule_retry(first.entry_id, due, now_ms - 1)
    await queue.schedule_retry(second.entry_id, later, now_ms + 60_000)
    assert await queue.depth() == 0
    assert await queue.live_order_ids() == {due, later}

    assert await queue.move_due_retries(now_ms) == 1
    assert [e.order_id for e in await queue.read(10, block_ms=100)] == [due]
    assert await queue.retries_scheduled() == 1
    assert await queue.live_order_ids() == {due, later}


async def test_an_entry_carries_what_its_order_asks_the_router(
    queue_for: QueueFor, redis: aioredis.Redis
) -> None:
    """So that a worker can quote the order while it locks and reads it; reclaimed, the
    entry still carries it. One whose ask cannot be read still names its order and runs
    without the head start."""
    queue = queue_for("w")
    await queue.ensure_group()
    ask = RouteAsk("SOL", "USDC", Decimal("1.25"))
    asking, bare, garbled = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await queue.enqueue(asking, ask)
    await queue.enqueue(bare)
    await redis.xadd(queue.stream, {"order_id": str(garbled), "ask": "SOL USDC"})
    entries = await queue.read(10, block_ms=100)
    assert [(e.order_id, e.ask) for e in entries] == [
        (asking, ask),
        (bare, None),
        (garbled, None),
    ]
    reclaimed = await queue_for("other").reclaim(min_idle_ms=0, count=10)
    assert [e.ask for e in reclaimed] == [ask, None, None]


async def test_dead_letter_moves_the_entry_in_one_step(
    queue_for: QueueFor, redis: aioredis.Redis
) -> None:
    queue = queue_for("w")
    await queue.ensure_group()
    order_id = uuid.uuid4()
    await queue.enqueue(order_id)
    [entry] = await queue.read(10, block_ms=100)
    await queue.dead_letter(entry, "delivered too often")
    assert await queue.depth() == 0
    assert (await redis.xpending(queue.stream, GROUP))["pending"] == 0
    dead = cast(list[tuple[str, dict[str, str]]], await redis.xrange(queue.dead_letters))
    assert [(f["order_id"], f["reason"]) for _, f in dead] == [
        (str(order_id), "delivered too often")
    ]


async def test_an_order_is_locked_by_one_holder_at_a_time(
    locks_for: Callable[[], AdvisoryLocks],
) -> None:
    here, there = locks_for(), locks_for()
    order_id = uuid.uuid4()
    assert await here.try_lock_order(order_id)
    assert not await here.try_lock_order(order_id)  # a second delivery in this process
    assert not await there.try_lock_order(order_id)  # or in another
    await here.unlock_order(order_id)
    assert await there.try_lock_order(order_id)


async def test_locks_and_unlocks_asked_together_each_take_effect_in_the_order_asked(
    locks_for: Callable[[], AdvisoryLocks],
) -> None:
    """They share one statement; a lock of an order that is being unlocked waits for the
    unlock, and an unlock that can spare time still happens."""
    here, there = locks_for(), locks_for()
    a, b = uuid.uuid4(), uuid.uuid4()
    assert await here.try_lock_order(a)
    _, took_b, took_a_again = await asyncio.gather(
        here.unlock_order(a), here.try_lock_order(b), here.try_lock_order(a, within_s=0.01)
    )
    assert took_b
    assert took_a_again
    assert not await there.try_lock_order(a)
    assert not await there.try_lock_order(b)
    await asyncio.gather(here.unlock_order(a, within_s=0.01), here.unlock_order(b))
    assert await there.try_lock_order(a)
    assert await there.try_lock_order(b)


@pytest.fixture
async def leaders_for(db_url: str) -> AsyncIterator[Callable[[Role], Leadership]]:
    made: list[Leadership] = []

    def make(role: Role) -> Leadership:
        made.append(Leadership(db_url, role, timeout_s=5))
        return made[-1]

    yield make
    for leadership in made:
        await leadership.close()


async def test_one_leader_per_role_until_its_connection_goes(
    leaders_for: Callable[[Role], Leadership],
) -> None:
    first, second = leaders_for(Role.RECONCILER), leaders_for(Role.RECONCILER)
    producer = leaders_for(Role.SLOT_PRODUCER)
    assert await first.try_lead()
    assert await producer.try_lead()  # another role, another lock
    assert first.backend_pid is not None
    assert second.backend_pid is None
    assert not await second.try_lead()
    await first.close()  # the process died: Postgres drops its session locks
    assert await second.try_lead()


async def test_reconciler_requeues_an_accepted_order_redis_lost(
    store: OrderStore,
    queue_for: QueueFor,
    leaders_for: Callable[[Role], Leadership],
    db: asyncpg.Connection,
) -> None:
    queue = queue_for("w")
    await queue.ensure_group()
    lost, _ = await store.insert_order(NEW, queued=True)  # committed, never enqueued
    held, _ = await store.insert_order(NEW, queued=True)
    await queue.enqueue(held.id)
    not_queued, _ = await store.insert_order(NEW, queued=False)  # placed, not executed
    done, _ = await store.insert_order(NEW, queued=True)
    await store.transition(
        done.id,
        OrderStatus.FAILED,
        Failed(code="no_route", reason="x", attempt=1),
        Changes(failure_code="no_route", failure_reason="x"),
    )
    await db.execute("UPDATE orders SET updated_at = now() - interval '1 minute'")

    leader = Reconciler(store, queue, leaders_for(Role.RECONCILER), interval_s=1, grace_s=30)
    follower = Reconciler(store, queue, leaders_for(Role.RECONCILER), interval_s=1, grace_s=30)
    assert await leader.run_once() == 1
    assert await follower.run_once() == 0  # not the leader
    assert await leader.run_once() == 0  # now live in Redis
    queued = [e.order_id for e in await queue.read(10, block_ms=100)]
    assert sorted(map(str, queued)) == sorted(map(str, [held.id, lost.id]))
    assert not_queued.id not in queued


async def test_entry_delivered_too_often_is_dead_lettered_and_its_order_failed(
    start_app: AppClient, queue_for: QueueFor, store: OrderStore, redis: aioredis.Redis
) -> None:
    """A consumer took the entry and died: with MAX_DELIVERIES=1, the second delivery
    ends the order with a clear reason instead of running it again."""
    order, _ = await store.insert_order(NEW, queued=True)
    dead = queue_for("crashed-process")
    await dead.ensure_group()
    await dead.enqueue(order.id)
    assert [e.order_id for e in await dead.read(1, block_ms=100)] == [order.id]
    client = await start_app(max_deliveries=1, reclaim_idle_ms=100)
    messages = await follow_order(client, str(order.id))
    assert [m["status"] for m in messages][-1] == "failed"
    assert messages[-1]["data"]["code"] == "dead_lettered"
    assert "delivered" in messages[-1]["data"]["reason"]
    # The entry is dead-lettered after its order has failed: wait for it to arrive.
    assert await redis.xread({dead.dead_letters: "0"}, count=1, block=5000)
    assert await redis.xlen(dead.dead_letters) == 1
    metrics = await (await client.get("/metrics")).text()
    assert "order_engine_orders_dead_lettered_total 1.0" in metrics.splitlines()


async def test_a_second_delivery_of_a_running_order_waits_for_the_first(
    start_app: AppClient,
    queue_for: QueueFor,
    db: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same order queued twice (a redelivery, a reconciler that ran early): the
    second delivery finds the order locked and steps back; it runs once."""
    caplog.set_level("INFO", logger="order_engine.engine.worker")
    client = await start_app(mock_dex_execution_delay_ms=200)
    accepted = await execute(client)
    await queue_for("w").enqueue(uuid.UUID(accepted["orderId"]))
    messages = await follow_order(client, accepted["orderId"])
    assert [m["status"] for m in messages] == [
        "pending",
        "routing",
        "building",
        "submitted",
        "confirmed",
    ]
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 1
    assert any("being executed elsewhere" in r.getMessage() for r in caplog.records)
