"""API keys: /api routes and sockets need one when API_KEYS is set; probes stay open."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest

from tests.conftest import AppClient
from tests.integration.test_api_errors import error_of
from tests.support import WALLET, Client, order_body

KEYS = ("first-key", "second-key")


@pytest.fixture
async def keyed(start_app: AppClient) -> Client:
    return await start_app(api_keys=KEYS)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/tokens"),
        ("GET", "/api/quote?inputToken=SOL&outputToken=USDC&inputAmount=1"),
        ("POST", "/api/orders"),
        ("POST", "/api/orders/execute"),
        ("GET", f"/api/orders/user/{WALLET}"),
        ("GET", "/api/nothing-here"),
    ],
)
async def test_api_routes_need_a_valid_key(
    keyed: Client, db: asyncpg.Connection, method: str, path: str
) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}):
        resp = await keyed.request(method, path, json=order_body(), headers=headers)
        await error_of(resp, 401, "unauthorized")
    # A key in the query string is for WebSockets only.
    resp = await keyed.request(method, f"{path}{'&' if '?' in path else '?'}apiKey={KEYS[0]}")
    await error_of(resp, 401, "unauthorized")
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


async def test_any_configured_key_is_accepted(keyed: Client) -> None:
    for key in KEYS:
        resp = await keyed.post("/api/orders", json=order_body(), headers={"X-API-Key": key})
        assert resp.status == 201, await resp.text()


async def test_health_metrics_and_openapi_stay_open(keyed: Client) -> None:
    for path in ("/health", "/metrics", "/openapi.json"):
        assert (await keyed.get(path)).status == 200, path


async def test_sockets_take_the_key_as_header_or_query(keyed: Client) -> None:
    path = f"/ws/orders?wallet={WALLET}"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await keyed.ws_connect(path)
    assert refused.value.status == 401
    for ws in (
        await keyed.ws_connect(path, headers={"X-API-Key": KEYS[0]}),
        await keyed.ws_connect(f"{path}&apiKey={KEYS[1]}"),
    ):
        assert not ws.closed
        await ws.close()


async def test_no_keys_configured_means_nothing_is_required(client: Client) -> None:
    assert (await client.get("/api/tokens")).status == 200
