"""Redis emptied or restarted, Postgres connections killed, a second process killed:
orders in flight all end, each swap at most once, and clients see 503 at worst."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio as aioredis

from tests.failure.checks import (
    Submissions,
    check_guarantees,
    submit_many,
    wait_all_terminal,
    wait_healthy,
)
from tests.failure.conftest import RedisServer, SpawnServer
from tests.failure.test_kill import FAST_RECOVERY

ORDERS = 150


async def run_through(base_url: str, seen: Submissions, outage: asyncio.Task[None]) -> None:
    """Submit in waves over about a second, so that the outage falls among them."""
    waves = 10
    for _ in range(waves):
        await submit_many(base_url, ORDERS // waves, seen)
        await asyncio.sleep(0.1)
    await outage


async def test_redis_flushall_mid_run(
    spawn_server: SpawnServer, db: asyncpg.Connection, own_redis: RedisServer
) -> None:
    server = await spawn_server(REDIS_URL=own_redis.url, **FAST_RECOVERY)
    seen = Submissions()

    async def flush() -> None:
        await asyncio.sleep(0.2)
        client = aioredis.Redis.from_url(own_redis.url)
        await client.flushall()
        await client.aclose()

    await run_through(server.base_url, seen, asyncio.create_task(flush()))
    await wait_all_terminal(db)
    tally = await check_guarantees(db, seen.accepted)
    print(tally.line("Redis FLUSHALL"))
    assert (tally.lost, tally.double_swaps) == (0, 0)
    assert seen.server_errors == []


async def test_redis_restarted_empty_mid_run(
    spawn_server: SpawnServer, db: asyncpg.Connection, own_redis: RedisServer
) -> None:
    server = await spawn_server(REDIS_URL=own_redis.url, **FAST_RECOVERY)
    seen = Submissions()

    async def restart() -> None:
        await asyncio.sleep(0.2)
        await own_redis.kill()
        await asyncio.sleep(1)
        await own_redis.start()

    await run_through(server.base_url, seen, asyncio.create_task(restart()))
    # Once Redis is back, the engine takes orders again without being restarted.
    await wait_healthy(server.base_url)
    await submit_many(server.base_url, 20, seen)
    await wait_all_terminal(db)
    tally = await check_guarantees(db, seen.accepted)
    print(tally.line("Redis restarted empty"))
    assert (tally.lost, tally.double_swaps) == (0, 0)
    assert 503 in seen.statuses, "the outage did not fall among the submissions"
    assert seen.server_errors == []
    assert seen.statuses[-20:] == [202] * 20


async def test_postgres_connections_killed_mid_run(
    spawn_server: SpawnServer, db: asyncpg.Connection
) -> None:
    server = await spawn_server(**FAST_RECOVERY)
    seen = Submissions()

    async def terminate_backends() -> None:
        for _ in range(3):
            await asyncio.sleep(0.15)
            await db.execute(
                """
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                """
            )

    await run_through(server.base_url, seen, asyncio.create_task(terminate_backends()))
    await wait_healthy(server.base_url)
    await submit_many(server.base_url, 20, seen)
    await wait_all_terminal(db)
    tally = await check_guarantees(db, seen.accepted)
    print(tally.line("Postgres connections killed"))
    assert (tally.lost, tally.double_swaps) == (0, 0)
    assert seen.server_errors == []
    assert seen.statuses[-20:] == [202] * 20


async def test_survivor_finishes_the_orders_of_a_killed_process(
    spawn_server: SpawnServer, db: asyncpg.Connection
) -> None:
    # Orders are slow enough that the victim holds many when it dies.
    slow = {**FAST_RECOVERY, "MOCK_DEX_EXECUTION_DELAY_MS": "500"}
    survivor = await spawn_server(**slow)
    victim = await spawn_server(**slow)
    seen = Submissions()
    await asyncio.gather(
        submit_many(victim.base_url, ORDERS // 2, seen),
        submit_many(survivor.base_url, ORDERS // 2, seen),
    )
    victim.process.kill()
    await victim.process.wait()
    await wait_all_terminal(db)
    tally = await check_guarantees(db, seen.accepted)
    print(tally.line("two processes, one killed"))
    assert tally.accepted == ORDERS
    assert (tally.lost, tally.double_swaps) == (0, 0)
