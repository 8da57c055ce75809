"""`order-engine serve` with no database or Redis configured: it runs its own, stops them on
exit, and after a crash leaves no Redis behind and adopts the PostgreSQL it left."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from order_engine.embedded import free_port
from tests.failure.conftest import ServerProcess, start_server
from tests.support import order_body

pytestmark = pytest.mark.slow


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def exited(pid: int) -> None:
    """Wait until a process that is not our child exits: its pidfd becomes readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, done.set_result, None)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def server_pids(data_dir: Path) -> tuple[int, int]:
    """(redis-server, postmaster) pids, from the files each keeps in the data directory."""
    redis_pid = int((data_dir / "redis" / "redis.pid").read_text())
    postgres_pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    return redis_pid, postgres_pid


@pytest.fixture
async def data_dir(tmp_path: Path) -> AsyncIterator[Path]:
    directory = tmp_path / "data"
    yield directory
    # Whatever a failed test left running is stopped here, not left to the machine.
    with contextlib.suppress(OSError, ValueError):
        for pid in server_pids(directory):
            if running(pid):
                os.kill(pid, signal.SIGKILL)


async def spawn_embedded(data_dir: Path, cwd: Path) -> ServerProcess:
    port = free_port()
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DB_HOST", "REDIS_URL", "REDIS_HOST", "APP_ENV"}
    }
    environ |= {
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "MOCK_DEX_QUOTE_DELAY_MS": "0",
        "MOCK_DEX_EXECUTION_DELAY_MS": "0",
        "MOCK_DEX_FAILURE_RATE": "0",
    }
    return await start_server(environ, port, cwd)


async def place_and_confirm(base_url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base_url}/api/orders/execute", json=order_body()) as resp:
            assert resp.status == 202
            order = await resp.json()
        async with session.ws_connect(f"{base_url}{order['wsUrl']}") as ws:
            statuses = [msg.json()["status"] async for msg in ws]
    assert statuses[-1] == "confirmed"
    return str(order["orderId"])


async def test_serve_runs_its_own_servers_and_stops_them_on_exit(
    data_dir: Path, tmp_path: Path
) -> None:
    server = await spawn_embedded(data_dir, tmp_path)
    drain = asyncio.create_task(server.drain_log())
    log = "".join(server.log)
    assert f"embedded PostgreSQL: data {data_dir / 'postgres'}" in log
    assert f"embedded Redis: data {data_dir / 'redis'}" in log
    pids = server_pids(data_dir)
    assert all(running(pid) for pid in pids)

    await place_and_confirm(server.base_url)

    server.terminate()
    assert await asyncio.wait_for(server.process.wait(), 30) == 0
    await drain
    assert "embedded servers stopped" in "".join(server.log)
    assert not any(running(pid) for pid in pids)


async def test_after_a_crash_redis_is_gone_and_postgres_is_adopted(
    data_dir: Path, tmp_path: Path
) -> None:
    first = await spawn_embedded(data_dir, tmp_path)
    order_id = await place_and_confirm(first.base_url)
    redis_pid, postgres_pid = server_pids(data_dir)
    first.process.kill()
    await first.process.wait()

    # The kernel signals Redis when its parent dies.
    await asyncio.wait_for(exited(redis_pid), 10)
    # PostgreSQL runs detached and outlives the crash, until the next start adopts it.
    assert running(postgres_pid)

    second = await spawn_embedded(data_dir, tmp_path)
    drain = asyncio.create_task(second.drain_log())
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{second.base_url}/api/orders/{order_id}") as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["status"] == "confirmed"
    assert server_pids(data_dir)[1] == postgres_pid
    second.terminate()
    assert await asyncio.wait_for(second.process.wait(), 30) == 0
    await drain
    assert not running(postgres_pid)
