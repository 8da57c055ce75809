"""The server's log lines in production: one JSON object each, carrying the order id."""

from __future__ import annotations

import json
import logging
import uuid

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
    about_order = [line["message"] for line in lines if line.get("orderId") == order_id]
    assert any("accepted" in m for m in about_order)
    for status in STATUS_PATH[1:]:
        assert any(m.endswith(f"-> {status}") for m in about_order), (status, about_order)


def _record() -> logging.LogRecord:
    record = logging.LogRecord(
        "order_engine.x", logging.INFO, __file__, 1, "hello %s", ("w",), None
    )
    OrderContext().filter(record)
    return record


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
