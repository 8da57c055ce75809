"""Redis gone: the API answers 503 with Retry-After, never 500, and queues nothing silently."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.conftest import AppClient
from tests.failure.conftest import RedisServer
from tests.support import order_body


async def test_redis_down_gives_503_and_fails_every_unqueued_order_of_a_batch(
    start_app: AppClient,
    db: asyncpg.Connection,
    own_redis: RedisServer,
) -> None:
    client = await start_app(redis_url=own_redis.url)
    resp = await client.post("/api/orders/execute", json=order_body())
    assert resp.status == 202

    await own_redis.kill()

    # Accepted together, so inserted by one statement and refused by one pipeline.
    responses = await asyncio.gather(
        *(client.post("/api/orders/execute", json=order_body()) for _ in range(10))
    )
    for resp in responses:
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        assert (await resp.json())["error"]["code"] == "unavailable"
    # The orders that could not be queued are failed, not left to run behind the client.
    rows = await db.fetch("SELECT status, failure_code FROM orders ORDER BY created_at")
    assert [(r["status"], r["failure_code"]) for r in rows[1:]] == [
        ("failed", "enqueue_failed")
    ] * 10

    resp = await client.get("/health")
    assert resp.status == 503
    body = await resp.json()
    assert (body["status"], body["postgres"], body["redis"]) == ("degraded", "ok", "down")

    # Reads that need only Postgres keep working.
    resp = await client.post("/api/orders", json=order_body())
    assert resp.status == 201


async def test_liveness_stays_up_while_readiness_reports_the_redis_outage(
    start_app: AppClient, own_redis: RedisServer
) -> None:
    """An orchestrator restarting on /livez would not restart a healthy process for a
    dependency outage; one routing traffic on /readyz would stop sending it orders."""
    client = await start_app(redis_url=own_redis.url)
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/livez")).status == 200

    await own_redis.kill()

    resp = await client.get("/readyz")
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    body = await resp.json()
    assert (body["status"], body["postgres"], body["redis"]) == ("degraded", "ok", "down")
    assert body["queueDepth"] is None
    assert (await client.get("/health")).status == 503
    resp = await client.get("/livez")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
