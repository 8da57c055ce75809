"""SIGTERM with orders in flight: stop taking work, finish what fits the deadline, lose nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from tests.failure.checks import check_guarantees, wait_all_terminal
from tests.failure.conftest import ServerProcess, SpawnServer
from tests.support import order_body

ORDERS = 10


async def submit_and_wait_for(
    session: aiohttp.ClientSession, server: ServerProcess, status: str
) -> tuple[str, aiohttp.ClientWebSocketResponse, list[dict[str, Any]]]:
    """Execute an order and return once its socket has shown `status`."""
    async with session.post(f"{server.base_url}/api/orders/execute", json=order_body()) as resp:
        assert resp.status == 202
        order_id = (await resp.json())["orderId"]
    ws = await session.ws_connect(f"{server.base_url}/ws/orders/{order_id}")
    seen: list[dict[str, Any]] = []
    async for msg in ws:
        seen.append(msg.json())
        if seen[-1]["status"] == status:
            break
    return order_id, ws, seen


async def rest_of(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[dict[str, Any]], int | None]:
    messages = [msg.json() async for msg in ws]
    return messages, ws.close_code


async def test_sigterm_lets_in_flight_orders_finish_and_closes_sockets_with_1001(
    spawn_server: SpawnServer, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    server = await spawn_server(MOCK_DEX_EXECUTION_DELAY_MS="1500", SHUTDOWN_TIMEOUT_S="20")
    async with aiohttp.ClientSession() as session:
        submitted = await asyncio.gather(
            *(submit_and_wait_for(session, server, "submitted") for _ in range(ORDERS))
        )
        server.terminate()
        endings = await asyncio.gather(*(rest_of(ws) for _, ws, _ in submitted))
    assert await asyncio.wait_for(server.process.wait(), 20) == 0

    # Sockets are told to go elsewhere at once; the orders finish behind them.
    assert {code for _, code in endings} == {1001}
    rows = await db.fetch("SELECT status, last_seq FROM orders")
    assert [(r["status"], r["last_seq"]) for r in rows] == [("confirmed", 5)] * ORDERS
    assert (
        await db.fetchval(
            "SELECT count(DISTINCT order_id) FROM chain_transactions WHERE status = 'landed'"
        )
        == ORDERS
    )
    assert await redis.xlen(f"{redis_prefix}orders") == 0


async def test_sigterm_past_the_deadline_leaves_orders_whole_and_queued(
    spawn_server: SpawnServer, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    server = await spawn_server(MOCK_DEX_EXECUTION_DELAY_MS="30000", SHUTDOWN_TIMEOUT_S="0.5")
    async with aiohttp.ClientSession() as session:
        submitted = await asyncio.gather(
            *(submit_and_wait_for(session, server, "submitted") for _ in range(ORDERS))
        )
        started = time.monotonic()
        server.terminate()
        assert await asyncio.wait_for(server.process.wait(), 15) == 0
        stopped_after = time.monotonic() - started
        for _, ws, _ in submitted:
            await ws.close()

    assert stopped_after < 10, stopped_after
    # Every order stopped at a status it fully reached, and its entry waits for redelivery.
    rows = await db.fetch(
        """
        SELECT o.status, o.last_seq, count(e.seq) AS events
        FROM orders o JOIN order_events e ON e.order_id = o.id GROUP BY o.id
        """
    )
    assert [(r["status"], r["last_seq"], r["events"]) for r in rows] == [
        ("submitted", 4, 4)
    ] * ORDERS
    pending = await redis.xpending(f"{redis_prefix}orders", "workers")
    assert pending["pending"] == ORDERS
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 0

    # The next process reclaims what the stopped one left, and finishes it.
    await spawn_server(RECLAIM_IDLE_MS="500")
    await wait_all_terminal(db)
    tally = await check_guarantees(
        db, {str(r["id"]) for r in await db.fetch("SELECT id FROM orders")}
    )
    assert (tally.lost, tally.double_swaps) == (0, 0)
    assert tally.by_status == {"confirmed": ORDERS}
