"""Accepts and transitions made together are applied together, and fail together, with
every caller answered for its own order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import asyncpg
import attrs
import orjson
import redis.asyncio as aioredis

from order_engine.api.orders_service import OrderService, Placement
from order_engine.domain.errors import ClientOrderIdInUse
from order_engine.domain.routes import RouteAsk
from order_engine.queue import OrderQueue
from order_engine.store.orders import OrderStore
from tests.conftest import AppClient
from tests.support import execute, new_order, order_body

# Nothing is executed while the test looks: the one order a worker takes waits for the
# chain far longer than the test runs, and the rest wait in the stream.
HELD = {"worker_concurrency": 1, "mock_dex_execution_delay_ms": 600_000}


async def test_a_thousand_concurrent_accepts_make_a_thousand_orders_entries_and_events(
    start_app: AppClient, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    client = await start_app(**HELD)
    accepted = await asyncio.gather(*(execute(client) for _ in range(1000)))
    ids = {a["orderId"] for a in accepted}
    assert len(ids) == 1000
    rows = await db.fetch("SELECT id::text AS id FROM orders")
    assert {r["id"] for r in rows} == ids
    first = await db.fetch("SELECT order_id::text AS id FROM order_events WHERE seq = 1")
    assert sorted(r["id"] for r in first) == sorted(ids)
    gapless = await db.fetchval(
        """
        SELECT bool_and(n = top AND top = last_seq) FROM (
            SELECT o.last_seq, count(*) AS n, max(e.seq) AS top
            FROM orders o JOIN order_events e ON e.order_id = o.id GROUP BY o.id
        ) per_order
        """
    )
    assert gapless
    entries = await redis.xrange(f"{redis_prefix}orders") or []
    assert sorted(str((fields or {})["order_id"]) for _, fields in entries) == sorted(ids)
    # Each says what its market order asks the router, for the worker to quote at once.
    asks = [orjson.loads((fields or {})["ask"]) for _, fields in entries]
    assert asks == [{"input_token": "SOL", "output_token": "USDC", "input_amount": "1.5"}] * 1000


async def test_a_failed_batch_of_accepts_answers_every_caller_503_and_writes_nothing(
    start_app: AppClient, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """While the orders table is locked the batch's one INSERT times out: each of its
    callers gets 503 with Retry-After, and no order, event or queue entry exists."""
    client = await start_app(db_command_timeout_s=0.5, **HELD)
    async with db.transaction():
        await db.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        responses = await asyncio.gather(
            *(client.post("/api/orders/execute", json=order_body()) for _ in range(20))
        )
    assert [r.status for r in responses] == [503] * 20
    for resp in responses:
        assert resp.headers["Retry-After"]
        assert (await resp.json())["error"]["code"] == "unavailable"
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    assert await db.fetchval("SELECT count(*) FROM order_events") == 0
    assert await redis.xlen(f"{redis_prefix}orders") == 0
    # The next batch goes through.
    await execute(client)
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


class RecordingQueue(OrderQueue):
    """The real queue, noting each batch of entries the service hands it and each entry
    it is asked to add on its own."""

    def __init__(self, client: aioredis.Redis, stream: str) -> None:
        super().__init__(client, client, stream=stream, consumer="test")
        self.batches: list[list[uuid.UUID]] = []
        self.singles = 0

    async def enqueue_many(self, orders: Sequence[tuple[uuid.UUID, RouteAsk | None]]) -> list[str]:
        self.batches.append([order_id for order_id, _ in orders])
        return await super().enqueue_many(orders)

    async def enqueue(self, order_id: uuid.UUID, ask: RouteAsk | None = None) -> str:
        self.singles += 1
        return await super().enqueue(order_id, ask)


async def test_orders_placed_together_are_queued_by_their_batch_in_one_round_trip(
    store: OrderStore, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """The batch that inserts the orders adds their entries itself, in one pipeline and
    before any caller is answered; only the orders to execute get one, and a caller
    refused for its clientOrderId gets its own error while the others go through."""
    queue = RecordingQueue(redis, f"{redis_prefix}orders")
    service = OrderService(store, queue)
    named = attrs.evolve(new_order(), client_order_id="mine")
    await service.place(named, execute=True)
    queue.batches.clear()

    placing = [service.place(new_order(), execute=True) for _ in range(30)]
    placing += [service.place(new_order(), execute=False) for _ in range(5)]
    placing.append(service.place(named, execute=True))
    results = await asyncio.gather(*placing, return_exceptions=True)

    executed = [r.order.id for r in results[:30] if isinstance(r, Placement)]
    assert len(executed) == 30
    assert all(isinstance(r, Placement) for r in results[30:35])
    assert isinstance(results[35], ClientOrderIdInUse)
    assert queue.batches == [executed]
    assert queue.singles == 0
    entries = await redis.xrange(queue.stream) or []
    assert [uuid.UUID(str((fields or {})["order_id"])) for _, fields in entries][1:] == executed
