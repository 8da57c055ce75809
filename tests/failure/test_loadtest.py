"""The load tools run end to end: bench.py spawning a server, baseline_sql.py on a test
database. Each must end with one JSON line whose figures add up."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests import conftest

pytestmark = pytest.mark.slow

LOADTEST = Path(__file__).resolve().parents[2] / "loadtest"


async def last_json_line(*args: str, env: dict[str, str]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("processes", [1, 2])
async def test_bench_spawns_a_server_and_follows_every_order_to_its_end(
    db_url: str, redis_prefix: str, db: asyncpg.Connection, processes: int
) -> None:
    result = await last_json_line(
        str(LOADTEST / "bench.py"),
        "--spawn",
        f"--processes={processes}",
        "--quote-delay-ms=0",
        "--execution-delay-ms=0",
        "--chain-slot-ms=20",
        "--worker-concurrency=5",
        "--orders=30",
        "--concurrency=10",
        env={"DATABASE_URL": db_url, "REDIS_URL": conftest.REDIS_URL, "REDIS_PREFIX": redis_prefix},
    )
    assert result["orders"] == 30
    assert result["confirmed"] == 30
    assert result["not_terminal"] == 0
    assert result["failures"] == {}
    assert result["achieved_orders_per_s"] > 0
    latencies = result["accept_to_confirmed_ms"]
    assert 0 < latencies["p50"] <= latencies["p90"] <= latencies["p99"] <= latencies["max"]
    assert result["server_peak_rss_mib"] > 0
    assert result["server_cpu_ms_per_order"] > 0
    assert result["server"]["processes"] == processes
    assert await db.fetchval("SELECT count(*) FROM orders WHERE status = 'confirmed'") == 30


async def test_bench_counts_refused_orders_by_code(db_url: str, redis_prefix: str) -> None:
    result = await last_json_line(
        str(LOADTEST / "bench.py"),
        "--spawn",
        "--quote-delay-ms=0",
        "--execution-delay-ms=0",
        "--orders=4",
        "--rate=50",
        "--slippage-bps=99999",
        env={"DATABASE_URL": db_url, "REDIS_URL": conftest.REDIS_URL, "REDIS_PREFIX": redis_prefix},
    )
    assert result["failures"] == {"http_400_validation_error": 4}
    assert result["confirmed"] == 0
    assert result["offered_orders_per_s"] == 50


async def test_baseline_sql_runs_one_orders_statements(db_url: str, db: asyncpg.Connection) -> None:
    result = await last_json_line(
        str(LOADTEST / "baseline_sql.py"),
        f"--database-url={db_url}",
        "--orders=20",
        "--concurrency=4",
        env={},
    )
    assert result["orders"] == 20
    assert result["orders_per_s"] > 0
    assert await db.fetchval("SELECT count(*) FROM orders WHERE status = 'confirmed'") == 20
    assert await db.fetchval("SELECT count(*) FROM order_events") == 20 * 5
    assert (
        await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 20
    )
