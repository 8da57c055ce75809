"""The real server as a subprocess (`python -m order_engine serve`), for tests that stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import attrs
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from order_engine.embedded import free_port, redis_server_binary
from tests import conftest


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


SERVE = (sys.executable, "-m", "order_engine", "serve")


async def start_server(
    environ: dict[str, str], port: int, cwd: Path | None = None, command: Sequence[str] = SERVE
) -> ServerProcess:
    """`command` (`python -m order_engine serve`) with exactly `environ`, once it listens on
    `port`."""
    process = await asyncio.create_subprocess_exec(
        *command,
        env=environ,
        cwd=cwd,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        # A group of its own, so that teardown ends the server's children with it: one
        # left alive holds the log pipe open, and waiting for the server never returns.
        start_new_session=True,
    )
    server = ServerProcess(process, f"http://127.0.0.1:{port}")
    await server.wait_until_listening()
    return server


def server_environ(db_url: str, redis_prefix: str, port: int, **env: str) -> dict[str, str]:
    """The environment of a server of the test's own: its database, Redis prefix and
    port, no quote delay, no DEX failures, `env` over that."""
    return {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": db_url,
        "REDIS_URL": conftest.REDIS_URL,
        "REDIS_PREFIX": redis_prefix,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "MOCK_DEX_QUOTE_DELAY_MS": "0",
        "MOCK_DEX_FAILURE_RATE": "0",
        # As in the in-process tests: prices stand still unless a test moves them, so
        # that an order held across a shutdown is not failed by the walk's slippage.
        "PRICE_WALK_INTERVAL_MS": "0",
        # Short slots, so that a test's orders confirm in tens of milliseconds.
        "CHAIN_SLOT_MS": "20",
        **env,
    }


@pytest.fixture
async def spawn_server(db_url: str, redis_prefix: str) -> AsyncIterator[SpawnServer]:
    processes: list[ServerProcess] = []
    drains: list[asyncio.Task[None]] = []

    async def spawn(*args: str, **env: str) -> ServerProcess:
        """A server with these environment variables over the defaults below, and these
        arguments to `serve` (e.g. "--processes", "2")."""
        port = free_port()
        environ = server_environ(db_url, redis_prefix, port, **env)
        server = await start_server(environ, port, command=(*SERVE, *args))
        processes.append(server)
        drains.append(asyncio.create_task(server.drain_log()))
        return server

    yield spawn
    for server in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        await server.process.wait()
    for task in drains:
        task.cancel()


@attrs.define
class RedisServer:
    """A redis-server of the test's own, so that it can be emptied, killed and restarted
    without touching the shared one."""

    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
        )
        probe = aioredis.Redis.from_url(self.url)
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        await probe.ping()
                        return
                    except RedisConnectionError:
                        await asyncio.sleep(0.05)
        finally:
            await probe.aclose()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    server = RedisServer(free_port())
    await server.start()
    yield server
    await server.kill()
