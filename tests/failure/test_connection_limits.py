"""The limits a real `serve` process puts on connections: a head that never finishes,
too many connections, idle keep-alive connections; and that open sockets live on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from yarl import URL

from tests.failure.conftest import ServerProcess, SpawnServer
from tests.support import order_body


async def connect(server: ServerProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = URL(server.base_url)
    assert url.host is not None
    return await asyncio.open_connection(url.host, url.port)


async def until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    data = await asyncio.wait_for(reader.read(), 10)
    return data, time.monotonic()


async def test_a_head_that_never_finishes_is_408_after_the_header_timeout(
    spawn_server: SpawnServer,
) -> None:
    server = await spawn_server(HEADER_TIMEOUT_S="0.3")
    reader, writer = await connect(server)
    started = time.monotonic()

    async def trickle() -> None:
        """A byte every 50 ms, as a slowloris client sends, none ending the head."""
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        while not writer.is_closing():
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(0.05)

    slow = asyncio.create_task(trickle())
    data, closed_at = await until_closed(reader)
    slow.cancel()
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert 0.25 < closed_at - started < 2
    # A client that sends its head in time is served as before.
    async with aiohttp.ClientSession() as session, session.get(f"{server.base_url}/health") as resp:
        assert resp.status == 200


async def test_a_silent_connection_gets_408_once_the_header_timeout_passes(
    spawn_server: SpawnServer,
) -> None:
    server = await spawn_server(HEADER_TIMEOUT_S="0.3")
    reader, writer = await connect(server)
    started = time.monotonic()
    data, closed_at = await until_closed(reader)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b'"code": "request_timeout"' in data
    assert 0.25 < closed_at - started < 2


async def test_connections_over_the_limit_get_503_and_the_rest_are_served(
    spawn_server: SpawnServer,
) -> None:
    server = await spawn_server(MAX_CONNECTIONS="3", HEADER_TIMEOUT_S="30")
    held = [await connect(server) for _ in range(3)]
    reader, writer = await connect(server)
    data, _ = await until_closed(reader)
    writer.close()
    assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: " in data
    assert b'"code": "unavailable"' in data
    # One of the held connections is served; once it closes, a new one is let in.
    first_reader, first_writer = held[0]
    first_writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer, _ = await until_closed(first_reader)
    assert answer.startswith(b"HTTP/1.1 200")
    first_writer.close()
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            async with session.get(f"{server.base_url}/health") as resp:
                if resp.status == 200:
                    break
            # The server counts a connection out when its close reaches it.
            await asyncio.sleep(0.05)
        assert resp.status == 200
    for _, writer in held[1:]:
        writer.close()


async def test_an_idle_keepalive_connection_is_closed_after_the_timeout(
    spawn_server: SpawnServer,
) -> None:
    server = await spawn_server(KEEPALIVE_TIMEOUT_S="0.3")
    reader, writer = await connect(server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    answered = time.monotonic()
    _, closed_at = await until_closed(reader)
    writer.close()
    assert 0.25 < closed_at - answered < 3


async def test_an_open_socket_outlives_the_header_and_keepalive_timeouts(
    spawn_server: SpawnServer,
) -> None:
    server = await spawn_server(HEADER_TIMEOUT_S="0.2", KEEPALIVE_TIMEOUT_S="0.2")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.base_url}/api/orders", json=order_body()) as resp:
            order_id = (await resp.json())["orderId"]
        async with session.ws_connect(f"{server.base_url}/ws/orders/{order_id}") as ws:
            assert (await ws.receive_json(timeout=5))["status"] == "pending"
            # Time itself is what is tested: both timeouts pass while the socket idles.
            await asyncio.sleep(1)
            async with session.post(f"{server.base_url}/api/orders/{order_id}/cancel") as resp:
                assert resp.status == 200
            assert (await ws.receive_json(timeout=5))["status"] == "cancelled"


async def test_serve_runs_on_the_c_allocator(spawn_server: SpawnServer) -> None:
    """So that memory freed by closed sockets can be given back (order_engine/memory.py)."""
    server = await spawn_server()
    environ = await asyncio.to_thread(Path(f"/proc/{server.process.pid}/environ").read_bytes)
    assert b"PYTHONMALLOC=malloc" in environ.split(b"\0")
