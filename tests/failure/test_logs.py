"""The server's log lines: one JSON object each, carrying the order and the request they
are about, and one access line per request."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import aiohttp
import pytest

from order_engine.logs import ORDER_ID, JsonFormatter, OrderContext, ReadableFormatter
from tests.failure.conftest import SpawnServer
from tests.support import STATUS_PATH, order_body


@pytest.mark.slow
async def test_production_logs_are_json_lines_carrying_the_order_id(
    spawn_server: SpawnServer,
) -> None:
    server = await spawn_server(APP_ENV="production", MOCK_DEX_EXECUTION_DELAY_MS="0")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.base_url}/api/orders/execute", json=order_body()) as r:
            assert r.status == 202
            order_id = (await r.json())["orderId"]
        async with session.ws_connect(f"{server.base_url}/ws/orders/{order_id}") as ws:
            statuses = [msg.json()["status"] async for msg in ws]
    assert statuses == STATUS_PATH
    server.terminate()
    await server.process.wait()

    lines = [json.loads(line) for line in server.log if line.strip()]
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    # UTC with milliseconds and a Z, as the API writes its timestamps.
    assert all(TIMESTAMP.match(line["timestamp"]) for line in lines)
    about_order = [line["message"] for line in lines if line.get("orderId") == order_id]
    assert any("accepted" in m for m in about_order)
    for status in STATUS_PATH[1:]:
        assert any(m.endswith(f"-> {status}") for m in about_order), (status, about_order)


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FORWARDED_CLIENT = "203.0.113.9"


async def _get(session: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, str]:
    async with session.get(url, headers=headers) as resp:
        return resp.status, resp.headers["X-Request-ID"]


@pytest.mark.slow
async def test_every_request_leaves_one_json_access_line_with_its_request_id(
    spawn_server: SpawnServer,
) -> None:
    """2xx and 4xx alike: one access line each, with method, route, status, latency,
    client and the request id the response carried (the caller's, or a new one)."""
    server = await spawn_server(LOG_FORMAT="json", TRUSTED_PROXIES="127.0.0.1")
    base = server.base_url
    unknown_order = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        sent: list[tuple[str, str, int, str]] = []
        for path, route, headers in (
            ("/api/tokens", "/api/tokens", {}),
            ("/api/nothing", "unmatched", {"X-Request-ID": "caller-chosen-id.1"}),
            (f"/api/orders/{unknown_order}", "/api/orders/{orderId}", {}),
            ("/api/orders/not-a-uuid", "/api/orders/{orderId}", {}),
            ("/livez", "/livez", {"X-Forwarded-For": f"198.51.100.1, {FORWARDED_CLIENT}"}),
        ):
            status, request_id = await _get(session, base + path, **headers)
            sent.append((path, route, status, request_id))
        async with session.post(f"{base}/api/orders", json={"userWallet": "x"}) as resp:
            sent.append(("/api/orders", "/api/orders", resp.status, resp.headers["X-Request-ID"]))
    server.terminate()
    await server.process.wait()

    access: list[dict[str, Any]] = [
        line
        for line in (json.loads(raw) for raw in server.log if raw.strip())
        if line["logger"] == "order_engine.access"
    ]
    assert [line["path"] for line in access] == [path for path, *_ in sent]
    assert [s for _, _, s, _ in sent] == [200, 404, 404, 400, 200, 400]
    for line, (_, route, status, request_id) in zip(access, sent, strict=True):
        assert (line["route"], line["status"], line["requestId"]) == (route, status, request_id)
        assert line["method"] in ("GET", "POST")
        assert line["latencyMs"] >= 0
        assert TIMESTAMP.match(line["timestamp"])
    assert access[1]["requestId"] == "caller-chosen-id.1"
    assert re.fullmatch(r"[0-9a-f]{32}", access[0]["requestId"])
    assert access[2]["orderId"] == unknown_order
    assert "orderId" not in access[0]
    # The peer is a trusted proxy: the client is the hop it saw, not what the client wrote.
    assert access[4]["client"] == FORWARDED_CLIENT
    assert access[0]["client"] == "127.0.0.1"


def _record() -> logging.LogRecord:
    record = logging.LogRecord(
        "order_engine.x", logging.INFO, __file__, 1, "hello %s", ("w",), None
    )
    OrderContext().filter(record)
    return record


def test_json_lines_keep_extra_fields() -> None:
    record = logging.LogRecord("order_engine.x", logging.INFO, __file__, 1, "m", (), None)
    record.__dict__.update({"queueDepth": 3, "dex": "raydium"})
    line = json.loads(JsonFormatter().format(record))
    assert (line["queueDepth"], line["dex"], line["message"]) == (3, "raydium", "m")


def test_formatters_show_the_bound_order_and_nothing_when_none() -> None:
    assert "orderId" not in json.loads(JsonFormatter().format(_record()))
    assert "[order" not in ReadableFormatter().format(_record())
    token = ORDER_ID.set(uuid.UUID(int=7))
    try:
        record = _record()
        assert json.loads(JsonFormatter().format(record))["orderId"] == str(ORDER_ID.get())
        assert f"[order {ORDER_ID.get()}]" in ReadableFormatter().format(record)
    finally:
        ORDER_ID.reset(token)
