"""Hostile clients on the WebSockets: bad parameters and frames get one error message and
a 4xxx close within a second (or a 4xx before any upgrade), store nothing, and never an
HTTP answer inside an open socket; a subscriber that never reads is closed within a
second of falling behind while the others keep their pace.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from order_engine.api.appkeys import HUB, ORDERS, WEBSOCKETS
from order_engine.domain.events import OrderEvent
from order_engine.hub import Delivery
from tests.conftest import AppClient
from tests.hostile import (
    FUZZ,
    hostile_bodies,
    hostile_integers,
    hostile_order_ids,
    hostile_wallets,
)
from tests.integration.test_api_errors import error_of
from tests.integration.test_hostile_http import LIVE_BUDGET_S, encoded, nothing_stored
from tests.support import OTHER_WALLET, WALLET, Client, order_body

BUDGET_S = 1.0
Frame = tuple[aiohttp.WSMsgType, bytes]
# HTTP status when refused before the upgrade, messages received, close code.
Outcome = tuple[int | None, list[dict[str, Any]], int | None]


async def socket_outcome(client: Client, path: str, frames: Sequence[Frame] = ()) -> Outcome:
    """(HTTP status if refused before the upgrade, messages, close code) of a socket that
    is sent `frames`, all within BUDGET_S, while /livez answers beside it."""

    async def talk() -> Outcome:
        try:
            ws = await client.ws_connect(path, autoclose=True)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, [], None
        for opcode, data in frames:
            try:
                await ws.send_frame(data, opcode)
            except ConnectionResetError:
                break  # Closed by the server on an earlier frame.
        messages = [msg.json() async for msg in ws if msg.type == aiohttp.WSMsgType.TEXT]
        return None, messages, ws.close_code

    async def live() -> float:
        started = time.perf_counter()
        async with client.get("/livez") as resp:
            assert resp.status == 200
        return time.perf_counter() - started

    started = time.perf_counter()
    outcome: Outcome
    outcome, live_took = await asyncio.gather(asyncio.wait_for(talk(), BUDGET_S), live())
    assert time.perf_counter() - started < BUDGET_S
    assert live_took < LIVE_BUDGET_S
    return outcome


def refused_with(outcome: Outcome, close: int, *codes: str) -> dict[str, Any]:
    """The one error message of a socket closed with `close`, its code one of `codes`."""
    status, messages, close_code = outcome
    assert status is None, f"refused before the upgrade with {status}"
    assert close_code == close, (close_code, messages)
    assert [m["type"] for m in messages] == ["error"]
    assert messages[0]["code"] in codes
    assert messages[0]["message"]
    return messages[0]


async def pending_order(client: Client) -> str:
    resp = await client.post("/api/orders", json=order_body())
    assert resp.status == 201
    order_id: str = (await resp.json())["orderId"]
    return order_id


control_frames = st.lists(
    st.tuples(
        st.sampled_from([aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG]),
        st.binary(max_size=125),
    ),
    max_size=3,
)


@FUZZ
@given(
    body=hostile_bodies(),
    opcode=st.sampled_from([aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY]),
    before=control_frames,
)
async def test_hostile_first_messages_on_the_execute_socket_get_4400(
    client: Client,
    db: asyncpg.Connection,
    redis: aioredis.Redis,
    redis_prefix: str,
    body: bytes,
    opcode: aiohttp.WSMsgType,
    before: list[Frame],
) -> None:
    """Text frames carry the body's bytes as they are, UTF-8 or not."""
    outcome = await socket_outcome(client, "/api/orders/execute", [*before, (opcode, body)])
    refused_with(outcome, 4400, "invalid_json", "validation_error")
    await nothing_stored(db, redis, redis_prefix)


@FUZZ
@given(since=hostile_integers)
async def test_hostile_since_gets_4400_naming_it(client: Client, since: str) -> None:
    order_id = await pending_order(client)
    outcome = await socket_outcome(client, f"/ws/orders/{order_id}?since={encoded(since)}")
    error = refused_with(outcome, 4400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["since"]


@FUZZ
@given(order_id=hostile_order_ids)
async def test_hostile_order_ids_get_4400(client: Client, order_id: str) -> None:
    status, messages, close_code = await socket_outcome(client, f"/ws/orders/{encoded(order_id)}")
    if status is not None:
        # An empty id or one of dots is another path altogether: an HTTP 4xx, no socket.
        assert 400 <= status < 500
        return
    assert close_code == 4400, (close_code, messages)
    assert messages[0]["code"] == "invalid_order_id"


@FUZZ
@given(wallet=hostile_wallets)
async def test_hostile_wallets_get_4400_naming_the_wallet(client: Client, wallet: str) -> None:
    outcome = await socket_outcome(client, f"/ws/orders?wallet={encoded(wallet)}")
    error = refused_with(outcome, 4400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["wallet"]


data_frames = st.lists(
    st.one_of(
        control_frames.map(lambda frames: frames[0] if frames else (aiohttp.WSMsgType.PING, b"")),
        st.tuples(st.just(aiohttp.WSMsgType.TEXT), hostile_bodies()),
        st.tuples(st.just(aiohttp.WSMsgType.BINARY), st.binary(max_size=2048)),
    ),
    min_size=1,
    max_size=5,
)


@FUZZ
@given(frames=data_frames)
async def test_what_a_client_sends_on_an_order_socket_changes_nothing(
    client: Client, frames: list[Frame]
) -> None:
    """Clients have nothing to say on an order socket: whatever they send is read and
    dropped, and the socket goes on to deliver the order's events."""
    order_id = await pending_order(client)
    ws = await client.ws_connect(f"/ws/orders/{order_id}")
    assert (await ws.receive_json(timeout=BUDGET_S))["status"] == "pending"
    for opcode, data in frames:
        await ws.send_frame(data, opcode)
    resp = await client.post(f"/api/orders/{order_id}/cancel")
    assert resp.status == 200
    assert (await ws.receive_json(timeout=BUDGET_S))["status"] == "cancelled"
    assert (await ws.receive(timeout=BUDGET_S)).type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1000


# The cases found by hand, kept as they were found.


async def test_since_beyond_a_postgres_integer_is_4400_not_an_http_500(client: Client) -> None:
    """It reached Postgres, and the 500 was written into the open socket."""
    order_id = await pending_order(client)
    outcome = await socket_outcome(client, f"/ws/orders/{order_id}?since=99999999999")
    refused_with(outcome, 4400, "validation_error")


async def test_an_unknown_order_is_4404(client: Client) -> None:
    outcome = await socket_outcome(client, f"/ws/orders/{uuid.uuid4()}")
    refused_with(outcome, 4404, "order_not_found")


async def test_text_that_is_not_utf8_is_4400(client: Client, db: asyncpg.Connection) -> None:
    body = json.dumps(order_body(userWallet="\u00e9"), ensure_ascii=False).encode("latin-1")
    outcome = await socket_outcome(client, "/api/orders/execute", [(aiohttp.WSMsgType.TEXT, body)])
    refused_with(outcome, 4400, "invalid_json")
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


@pytest.mark.parametrize(
    ("failure", "close", "code"),
    [
        (RuntimeError("a bug"), 1011, "internal_error"),
        (asyncpg.CannotConnectNowError("the database is shutting down"), 1013, "unavailable"),
    ],
)
async def test_a_failure_after_the_upgrade_is_a_close_not_http(
    client: Client, monkeypatch: pytest.MonkeyPatch, failure: Exception, close: int, code: str
) -> None:
    """A bug is 1011, an outage 1013; either after one error message, never an HTTP 500
    written into the open socket."""
    order_id = await pending_order(client)

    async def failing(*args: Any, **kwargs: Any) -> list[OrderEvent]:
        raise failure

    monkeypatch.setattr(client.app[ORDERS], "events", failing)
    outcome = await socket_outcome(client, f"/ws/orders/{order_id}")
    refused_with(outcome, close, code)


async def test_a_message_over_the_body_limit_is_closed_by_the_protocol(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    """The WebSocket protocol answers it itself, before any handler: 1009, too big."""
    client = await start_app(max_body_bytes=1024)
    frames = [(aiohttp.WSMsgType.TEXT, b" " * 2048)]
    status, _, close_code = await socket_outcome(client, "/api/orders/execute", frames)
    assert (status, close_code) == (None, 1009)
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


async def test_sockets_over_the_total_cap_are_503_before_the_upgrade(start_app: AppClient) -> None:
    client = await start_app(ws_max_total=2)
    path = f"/ws/orders?wallet={WALLET}"
    first = await client.ws_connect(path)
    second = await client.ws_connect(path)
    resp = await client.get(
        path,
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        },
    )
    await error_of(resp, 503, "unavailable")
    assert "Retry-After" in resp.headers
    await first.close()
    await second.close()


async def open_unread_socket(
    port: int, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket that, once open, reads nothing: a small receive buffer, no reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def _event(seq: int, wallet: str, padding: int = 0) -> Delivery:
    """A status message stamped with when it was published (and padded to a size)."""
    data = {"sentAt": time.perf_counter(), "padding": "x" * padding}
    text = json.dumps({"type": "status", "seq": seq, "data": data})
    return Delivery(uuid.uuid4(), wallet, seq, False, text)


async def test_a_subscriber_that_never_reads_is_closed_within_a_second_others_keep_pace(
    start_app: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The slow one's wallet gets 64 KB events, past what the kernel buffers (4 MB here)
    hold; the others' wallet small ones, timed from publication to arrival."""
    client = await start_app(hub_buffer_size=32)
    assert client.port is not None
    _, slow = await open_unread_socket(client.port, f"/ws/orders?wallet={OTHER_WALLET}")
    others = [await client.ws_connect(f"/ws/orders?wallet={WALLET}") for _ in range(10)]
    hub, sockets = client.app[HUB], client.app[WEBSOCKETS]
    assert hub.subscriber_count == len(others) + 1
    latencies: list[float] = []

    async def read(ws: aiohttp.ClientWebSocketResponse, count: int) -> None:
        for _ in range(count):
            message = await ws.receive_json(timeout=5)
            latencies.append(time.perf_counter() - message["data"]["sentAt"])

    events = 300
    readers = [asyncio.create_task(read(ws, events)) for ws in others]
    with caplog.at_level(logging.WARNING, logger="order_engine.hub"):
        for seq in range(1, events + 1):
            hub.deliver_local(_event(seq, WALLET))
            hub.deliver_local(_event(seq, OTHER_WALLET, padding=64 * 1024))
            await asyncio.sleep(0.002)
        await asyncio.gather(*readers)
        dropped = [r for r in caplog.records if "dropped a slow subscriber" in r.getMessage()]
        assert len(dropped) == 1
        # Closed server-side (handler ended, socket unregistered) within a second of the
        # overflow, though the client never read a byte more.
        deadline = dropped[0].created + 1.0
        while len(sockets) > len(others) and time.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert len(sockets) == len(others)
    assert hub.subscriber_count == len(others)
    latencies.sort()
    p99 = latencies[math.ceil(0.99 * len(latencies)) - 1]
    assert len(latencies) == events * len(others)
    assert p99 < 0.050, f"p99 {p99 * 1000:.1f} ms"
    slow.close()
    for ws in others:
        await ws.close()
