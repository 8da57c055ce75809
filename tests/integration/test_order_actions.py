"""Executing a created order by its id, and cancelling, through the real app and workers."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from tests.conftest import AppClient
from tests.integration.test_api_errors import UNKNOWN_ID, error_of
from tests.support import STATUS_PATH, Client, follow_order, order_body


async def create(client: Client) -> dict[str, Any]:
    resp = await client.post("/api/orders", json=order_body())
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_created_order_runs_when_executed_by_id(
    client: Client, db: asyncpg.Connection
) -> None:
    order_id = (await create(client))["orderId"]
    resp = await client.post(f"/api/orders/{order_id}/execute")
    assert resp.status == 202, await resp.text()
    accepted = await resp.json()
    assert accepted["orderId"] == order_id
    assert accepted["status"] == "pending"

    messages = await follow_order(client, order_id)
    assert [m["status"] for m in messages] == STATUS_PATH
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 1


async def test_concurrent_executes_of_one_order_accept_exactly_one(
    client: Client, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    order_id = (await create(client))["orderId"]
    responses = await asyncio.gather(
        *(client.post(f"/api/orders/{order_id}/execute") for _ in range(10))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [202] + [409] * 9
    for resp in responses:
        if resp.status == 409:
            await error_of(resp, 409, "status_conflict")

    messages = await follow_order(client, order_id)
    assert [m["status"] for m in messages] == STATUS_PATH
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 1
    # Once confirmed, executing again is still a conflict, not a second run.
    await error_of(await client.post(f"/api/orders/{order_id}/execute"), 409, "status_conflict")


async def test_an_order_placed_for_execution_cannot_be_executed_again(client: Client) -> None:
    resp = await client.post("/api/orders/execute", json=order_body())
    order_id = (await resp.json())["orderId"]
    await error_of(await client.post(f"/api/orders/{order_id}/execute"), 409, "status_conflict")
    await follow_order(client, order_id)


async def test_cancel_a_created_order_then_execute_is_409(
    client: Client, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    order_id = (await create(client))["orderId"]
    resp = await client.post(f"/api/orders/{order_id}/cancel")
    assert resp.status == 200, await resp.text()
    cancelled = await resp.json()
    assert cancelled["status"] == "cancelled"

    await error_of(await client.post(f"/api/orders/{order_id}/execute"), 409, "status_conflict")
    await error_of(await client.post(f"/api/orders/{order_id}/cancel"), 409, "status_conflict")
    messages = await follow_order(client, order_id)
    assert [(m["seq"], m["status"]) for m in messages] == [(1, "pending"), (2, "cancelled")]
    assert await redis.xlen(f"{redis_prefix}orders") == 0


async def test_a_queued_entry_of_a_cancelled_order_is_skipped(
    start_app: AppClient, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    # Quotes take long enough that the cancel lands while the order is still pending,
    # whether or not a worker has read its entry yet.
    client = await start_app(mock_dex_quote_delay_ms=300)
    resp = await client.post("/api/orders/execute", json=order_body())
    order_id = (await resp.json())["orderId"]
    resp = await client.post(f"/api/orders/{order_id}/cancel")
    assert resp.status == 200, await resp.text()

    # Closing the app waits for the workers to finish what they hold.
    await client.close()
    statuses = await db.fetch(
        "SELECT status FROM order_events WHERE order_id = $1::uuid ORDER BY seq", order_id
    )
    assert [r["status"] for r in statuses] == ["pending", "cancelled"]
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 0


async def test_a_stale_entry_of_a_cancelled_order_is_acked_without_running(
    client: Client, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    order_id = (await create(client))["orderId"]
    assert (await client.post(f"/api/orders/{order_id}/cancel")).status == 200
    stream = f"{redis_prefix}orders"
    await redis.xadd(stream, {"order_id": order_id})
    # An order queued behind the stale entry is read with it or after it; once that one
    # has run and the app has stopped (which waits for the workers), the stale entry has
    # been handled too.
    later = await (await client.post("/api/orders/execute", json=order_body())).json()
    await follow_order(client, later["orderId"])
    await client.close()

    assert await redis.xlen(stream) == 0
    statuses = await db.fetch(
        "SELECT status FROM order_events WHERE order_id = $1::uuid ORDER BY seq", order_id
    )
    assert [r["status"] for r in statuses] == ["pending", "cancelled"]
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 1


async def test_cancel_of_a_confirmed_order_is_409_and_changes_nothing(client: Client) -> None:
    resp = await client.post("/api/orders/execute", json=order_body())
    order_id = (await resp.json())["orderId"]
    await follow_order(client, order_id)
    await error_of(await client.post(f"/api/orders/{order_id}/cancel"), 409, "status_conflict")
    order = await (await client.get(f"/api/orders/{order_id}")).json()
    assert order["status"] == "confirmed"


async def test_execute_and_cancel_of_bad_or_unknown_ids(client: Client) -> None:
    for action in ("execute", "cancel"):
        await error_of(await client.post(f"/api/orders/nope/{action}"), 400, "invalid_order_id")
        await error_of(
            await client.post(f"/api/orders/{UNKNOWN_ID}/{action}"), 404, "order_not_found"
        )
