"""Server memory per idle order socket, and whether it is given back once they close.

For each source tree given (this checkout, and e.g. a worktree of an older commit) and
each socket count N, it spawns `python -m order_engine serve` from that tree, creates N
pending orders, reads the server's RSS, opens one socket per order on
`/ws/orders/{id}` the way a browser does (offering permessage-deflate) and reads the
replayed `pending` event on each, reads the RSS once the server counts every socket,
resets them all, and reads the RSS again once the server counts none and 6 s more have
passed (a server that gives memory back does it every 5 s). One JSON line per run, then
the medians per tree and count.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    REDIS_URL=redis://127.0.0.1:6379/0 \\
    python loadtest/idle_sockets.py --sockets 1000 10000 --runs 3 --source . /tmp/ref

DATABASE_URL names a server where a scratch database is created and dropped; REDIS_URL
is used under a key prefix of each run's own, removed afterwards. The spawned servers
ping every 10 minutes (so that a client that never reads is not dropped during the
measurement) and have their socket caps raised, since every socket comes from this one
process; the file descriptor limit is raised to the hard limit, which the servers
inherit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import signal
import socket
import statistics
import struct
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import redis.asyncio as aioredis

ORDER = {
    "userWallet": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
    "inputToken": "SOL",
    "outputToken": "USDC",
    "inputAmount": "1",
}
CONNECT_CONCURRENCY = 200
SETTLE_S = 2.0
AFTER_CLOSE_S = 6.0
# What browsers offer on every WebSocket.
EXTENSIONS = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class IdleSocket:
    """A WebSocket client that does only the handshake and reads one message."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str, *, deflate: bool) -> IdleSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n" + (EXTENSIONS if deflate else "") + "\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"upgrade refused: {head.decode(errors='replace')}")
        sock = cls(reader, writer)
        await sock.read_frame()
        return sock

    async def read_frame(self) -> bytes:
        _, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return await self.reader.readexactly(length)

    def abort(self) -> None:
        # A reset rather than a FIN: no TIME_WAIT, so that runs do not use up the ports.
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.close()


@asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    name = f"oe_idle_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@asynccontextmanager
async def spawn(
    source: Path, database_url: str, redis_url: str, sockets: int
) -> AsyncIterator[tuple[int, int]]:
    """The server of `source` on a free port: yields its pid and port."""
    port = free_port()
    prefix = f"oe-idle:{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        # The tree's own package wins over the one installed in this venv.
        "PYTHONPATH": str(source),
        "APP_ENV": "development",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "LOG_LEVEL": "WARNING",
        "PRICE_WALK_INTERVAL_MS": "0",
        "WS_HEARTBEAT_S": "600",
        "WS_MAX_PER_CLIENT": "100000",
        "WS_MAX_TOTAL": str(sockets + 100),
        "MAX_CONNECTIONS": str(sockets + 1000),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "order_engine",
        "serve",
        env=env,
        cwd=source,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                if process.returncode is not None:
                    raise RuntimeError(f"the server of {source} exited at start")
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"the server of {source} did not become healthy")
        yield process.pid, port
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


async def socket_count(session: aiohttp.ClientSession, port: int) -> int:
    async with session.get(f"http://127.0.0.1:{port}/health") as resp:
        body: dict[str, Any] = await resp.json()
    return int(body["websockets"])


async def wait_for_count(session: aiohttp.ClientSession, port: int, wanted: int) -> None:
    deadline = time.monotonic() + 120
    while await socket_count(session, port) != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server never counted {wanted} sockets")
        await asyncio.sleep(0.2)
    await asyncio.sleep(SETTLE_S)


async def measure(
    source: Path, count: int, database_url: str, redis_url: str, *, deflate: bool
) -> dict[str, Any]:
    async with (
        spawn(source, database_url, redis_url, count) as (pid, port),
        aiohttp.ClientSession() as session,
    ):
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def create() -> str:
            async with (
                gate,
                session.post(f"http://127.0.0.1:{port}/api/orders", json=ORDER) as resp,
            ):
                body: dict[str, str] = await resp.json()
            return body["orderId"]

        order_ids = await asyncio.gather(*(create() for _ in range(count)))
        await asyncio.sleep(SETTLE_S)
        before = rss_kib(pid)

        async def follow(order_id: str) -> IdleSocket | None:
            async with gate:
                try:
                    return await IdleSocket.open(port, f"/ws/orders/{order_id}", deflate=deflate)
                except (OSError, asyncio.IncompleteReadError):
                    return None  # Counted below: a run is reported, not lost, for one.

        started = time.monotonic()
        opened = await asyncio.gather(*(follow(order_id) for order_id in order_ids))
        opened_s = time.monotonic() - started
        sockets = [sock for sock in opened if sock is not None]
        await wait_for_count(session, port, len(sockets))
        during = rss_kib(pid)
        for sock in sockets:
            sock.abort()
        await wait_for_count(session, port, 0)
        # A server that gives memory back does so within its trim interval (5 s).
        await asyncio.sleep(AFTER_CLOSE_S)
        after = rss_kib(pid)
    return {
        "source": str(source),
        "sockets": count,
        "deflate_offered": deflate,
        "rss_before_kib": before,
        "rss_open_kib": during,
        "rss_after_close_kib": after,
        "failed_opens": count - len(sockets),
        "kib_per_socket": round((during - before) / len(sockets), 2),
        "kib_kept_per_socket_after_close": round((after - before) / len(sockets), 2),
        "open_s": round(opened_s, 2),
    }


def summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = sorted({(r["source"], r["sockets"]) for r in results})
    rows = []
    for source, count in keys:
        runs = [r for r in results if (r["source"], r["sockets"]) == (source, count)]
        rows.append(
            {
                "source": source,
                "sockets": count,
                "runs": len(runs),
                "median_kib_per_socket": statistics.median(r["kib_per_socket"] for r in runs),
                "median_kib_kept_per_socket_after_close": statistics.median(
                    r["kib_kept_per_socket_after_close"] for r in runs
                ),
            }
        )
    return rows


async def run(args: argparse.Namespace) -> None:
    limit = raise_fd_limit()
    if limit < max(args.sockets) + 200:
        raise SystemExit(f"the hard file descriptor limit ({limit}) is too low")
    results = []
    async with scratch_database(args.database_url) as database_url:
        for _ in range(args.runs):
            # Interleaved, so that the machine's drift over the run touches every source.
            for count in args.sockets:
                for source in args.source:
                    result = await measure(
                        source.resolve(), count, database_url, args.redis_url, deflate=args.deflate
                    )
                    print(json.dumps(result), flush=True)
                    results.append(result)
    for row in summary(results):
        print(json.dumps({"summary": row}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, nargs="+", default=[Path(".")])
    parser.add_argument(
        "--deflate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="offer permessage-deflate, as browsers do (default: yes)",
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    args = parser.parse_args()
    if not (args.database_url and args.redis_url):
        parser.error("DATABASE_URL and REDIS_URL (or --database-url, --redis-url) are needed")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
