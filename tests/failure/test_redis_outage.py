"""Redis gone: the API answers 503 with Retry-After, never 500, and queues nothing silently."""

from __future__ import annotations

import asyncpg

from tests.conftest import AppClient
from tests.failure.conftest import RedisServer
from tests.support import order_body


async def test_redis_down_gives_503_and_fails_the_unqueued_order(
    start_app: AppClient,
    db: asyncpg.Connection,
    own_redis: RedisServer,
) -> None:
    client = await start_app(redis_url=own_redis.url)
    resp = await client.post("/api/orders/execute", json=order_body())
    assert resp.status == 202

    await own_redis.kill()

    resp = await client.post("/api/orders/execute", json=order_body())
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    assert (await resp.json())["error"]["code"] == "unavailable"
    # The order that could not be queued is failed, not left to run behind the client.
    row = await db.fetchrow("SELECT status, failure_code FROM orders ORDER BY created_at DESC")
    assert row is not None
    assert (row["status"], row["failure_code"]) == ("failed", "enqueue_failed")

    resp = await client.get("/health")
    assert resp.status == 503
    body = await resp.json()
    assert (body["status"], body["postgres"], body["redis"]) == ("degraded", "ok", "down")

    # Reads that need only Postgres keep working.
    resp = await client.post("/api/orders", json=order_body())
    assert resp.status == 201
