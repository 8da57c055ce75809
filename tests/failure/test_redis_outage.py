"""Redis gone: the API answers 503 with Retry-After, never 500, and queues nothing silently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from order_engine.embedded import redis_server_binary
from tests.conftest import AppClient
from tests.failure.conftest import free_port
from tests.support import order_body


@pytest.fixture
async def own_redis() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A Redis server of this test's own, so that it can be killed."""
    binary = redis_server_binary()
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=asyncio.subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    probe = aioredis.Redis.from_url(url)
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    await probe.ping()
                    break
                except RedisConnectionError:
                    await asyncio.sleep(0.05)
    finally:
        await probe.aclose()
    yield url, process
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_redis_down_gives_503_and_fails_the_unqueued_order(
    start_app: AppClient,
    db: asyncpg.Connection,
    own_redis: tuple[str, asyncio.subprocess.Process],
) -> None:
    url, process = own_redis
    client = await start_app(redis_url=url)
    resp = await client.post("/api/orders/execute", json=order_body())
    assert resp.status == 202

    process.kill()
    await process.wait()

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
