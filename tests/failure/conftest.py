"""The real server as a subprocess (`python -m order_engine serve`), for tests that stop it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs
import pytest

from tests import conftest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class ServerProcess:
    process: asyncio.subprocess.Process
    base_url: str
    log: list[str] = attrs.Factory(list)

    async def wait_until_listening(self) -> None:
        async def scan() -> None:
            assert self.process.stderr is not None
            while line := await self.process.stderr.readline():
                self.log.append(line.decode())
                if "listening on" in self.log[-1]:
                    return
            raise AssertionError("server exited before listening:\n" + "".join(self.log))

        await asyncio.wait_for(scan(), 30)

    async def drain_log(self) -> None:
        """Keep reading stderr so that the server never blocks on a full pipe."""
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.log.append(line.decode())

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


SpawnServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def spawn_server(db_url: str, redis_prefix: str) -> AsyncIterator[SpawnServer]:
    processes: list[ServerProcess] = []
    drains: list[asyncio.Task[None]] = []

    async def spawn(**env: str) -> ServerProcess:
        port = free_port()
        environ = {
            **os.environ,
            "APP_ENV": "development",
            "DATABASE_URL": db_url,
            "REDIS_URL": conftest.REDIS_URL,
            "REDIS_PREFIX": redis_prefix,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "MOCK_DEX_QUOTE_DELAY_MS": "0",
            "MOCK_DEX_FAILURE_RATE": "0",
            **env,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "order_engine",
            "serve",
            env=environ,
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        server = ServerProcess(process, f"http://127.0.0.1:{port}")
        processes.append(server)
        await server.wait_until_listening()
        drains.append(asyncio.create_task(server.drain_log()))
        return server

    yield spawn
    for server in processes:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
    for task in drains:
        task.cancel()
