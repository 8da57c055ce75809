"""Resting orders with real processes: two engines fire each order once, and a watcher
killed with SIGKILL is replaced by one that rebuilds the index from Postgres."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from tests.failure.checks import poll, wait_all_terminal
from tests.failure.conftest import ServerProcess, SpawnServer
from tests.support import OTHER_WALLET, RAY_AT_3, WALLET

SETTINGS = {"CHAIN_SLOT_MS": "50", "MOCK_DEX_EXECUTION_DELAY_MS": "50"}


def limit_order(index: int, **changes: Any) -> dict[str, Any]:
    """RAY -> USDC at a limit from 2.10 to 2.89: none reached before the launch, all of
    them after it."""
    return {
        "userWallet": (WALLET, OTHER_WALLET)[index % 2],
        "inputToken": "RAY",
        "outputToken": "USDC",
        "inputAmount": "5",
        "type": "limit",
        "limitPrice": f"{2.1 + (index % 80) / 100:.2f}",
        **changes,
    }


async def place(servers: list[ServerProcess], count: int) -> list[str]:
    """`count` limit orders, round-robin over the servers; their ids."""
    async with aiohttp.ClientSession() as session:

        async def one(index: int) -> str:
            base_url = servers[index % len(servers)].base_url
            async with session.post(
                f"{base_url}/api/orders/execute", json=limit_order(index)
            ) as resp:
                assert resp.status == 202, await resp.text()
                order_id: str = (await resp.json())["orderId"]
                return order_id

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def until_resting(db: asyncpg.Connection, count: int) -> None:
    async def resting() -> bool:
        waiting = await db.fetchval("SELECT count(*) FROM orders WHERE status = 'waiting'")
        return int(waiting) == count

    await poll(resting, 30)


async def launch(server: ServerProcess, pool: dict[str, str]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/api/dev/pools", json=pool) as resp,
    ):
        assert resp.status == 201, await resp.text()


async def fired_once(db: asyncpg.Connection, order_ids: list[str]) -> None:
    """Every order went pending → waiting → routing once, and at most one swap of it
    landed; confirmed, or failed at its limit by the orders ahead of it in the slot."""
    rows = await db.fetch(
        """
        SELECT o.id::text, o.status, o.failure_code,
               array_agg(e.status ORDER BY e.seq) AS events,
               (SELECT count(*) FROM chain_transactions t
                WHERE t.order_id = o.id AND t.status = 'landed') AS landed
        FROM orders o JOIN order_events e ON e.order_id = o.id
        WHERE o.id = ANY($1::uuid[])
        GROUP BY o.id
        """,
        order_ids,
    )
    assert sorted(r["id"] for r in rows) == sorted(order_ids)
    for row in rows:
        assert row["events"][:3] == ["pending", "waiting", "routing"], row
        assert row["events"].count("routing") == 1, row
        assert row["landed"] == (row["status"] == "confirmed"), row
        assert row["status"] == "confirmed" or row["failure_code"] == "slippage_exceeded", row
    assert sum(r["status"] == "confirmed" for r in rows) >= len(rows) // 2


async def test_with_two_processes_each_resting_order_fires_once(
    spawn_server: SpawnServer, db: asyncpg.Connection
) -> None:
    servers = [await spawn_server(WORKER_ID=f"p{i}", **SETTINGS) for i in range(2)]
    order_ids = await place(servers, 100)
    await until_resting(db, 100)
    await launch(servers[1], RAY_AT_3)
    await wait_all_terminal(db)
    await fired_once(db, order_ids)


async def test_after_a_kill_9_another_process_rebuilds_the_index_and_fires_them(
    spawn_server: SpawnServer, db: asyncpg.Connection
) -> None:
    """The only process, holding every resting order in its index, is SIGKILLed; the one
    started after it finds them in Postgres: they fire at the launch, and the one whose
    deadline passed meanwhile expires."""
    first = await spawn_server(WORKER_ID="first", **SETTINGS)
    order_ids = await place([first], 40)
    deadline = datetime.now(UTC) + timedelta(seconds=3)
    async with aiohttp.ClientSession() as session:
        body = limit_order(0, limitPrice="100", expiresAt=deadline.isoformat())
        async with session.post(f"{first.base_url}/api/orders/execute", json=body) as resp:
            assert resp.status == 202
            doomed = (await resp.json())["orderId"]
    await until_resting(db, 41)
    first.process.kill()
    await first.process.wait()

    second = await spawn_server(WORKER_ID="second", **SETTINGS)
    await launch(second, RAY_AT_3)
    await wait_all_terminal(db)
    expired = await db.fetchrow("SELECT status, updated_at FROM orders WHERE id = $1", doomed)
    assert expired is not None
    assert expired["status"] == "expired"
    assert expired["updated_at"] >= deadline
    await fired_once(db, order_ids)
