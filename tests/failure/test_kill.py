"""SIGKILL at random moments, several rounds, then a restart: nothing accepted is lost
and no swap runs twice (API.md, Guarantees)."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from tests.failure.checks import Submissions, check_guarantees, submit_many, wait_all_terminal
from tests.failure.conftest import SpawnServer

ROUNDS = 4
ORDERS_PER_ROUND = 75

# Small mock delays so that every round has orders at every step when the kill comes;
# a failure rate so that retries are in flight too; recovery settings scaled down so
# that the test takes seconds.
FAST_RECOVERY = {
    "MOCK_DEX_QUOTE_DELAY_MS": "5",
    "MOCK_DEX_EXECUTION_DELAY_MS": "40",
    "MOCK_DEX_FAILURE_RATE": "0.1",
    "RETRY_BASE_MS": "50",
    "RETRY_MAX_MS": "200",
    "RECLAIM_IDLE_MS": "1000",
    "RECONCILE_INTERVAL_S": "0.5",
    "RECONCILE_GRACE_S": "3",
    "MAX_DELIVERIES": "20",
}


async def test_sigkill_rounds_lose_no_order_and_swap_each_at_most_once(
    spawn_server: SpawnServer, db: asyncpg.Connection
) -> None:
    rng = random.Random(2026)
    seen = Submissions()
    server = await spawn_server(**FAST_RECOVERY)
    for _ in range(ROUNDS):
        # Orders are still being submitted, or executed, when the process dies.
        submitting = asyncio.create_task(submit_many(server.base_url, ORDERS_PER_ROUND, seen))
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        server.process.kill()
        await server.process.wait()
        await submitting
        server = await spawn_server(**FAST_RECOVERY)

    await wait_all_terminal(db)
    tally = await check_guarantees(db, seen.accepted)
    print(tally.line("kill -9"))
    assert tally.accepted >= ROUNDS * 10, "too few orders were accepted to prove anything"
    assert (tally.lost, tally.double_swaps) == (0, 0)
    assert seen.server_errors == []
