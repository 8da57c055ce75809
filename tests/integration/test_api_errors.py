"""Every 4xx of the routes, in the one error shape, and bad input changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.conftest import AppClient
from tests.support import WALLET, Client, order_body

UNKNOWN_ID = "3f0c1a52-3d0e-4a59-9a8e-6f1f8d2b9c11"


async def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize("path", ["/api/orders", "/api/orders/execute"])
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"inputToken": "SOL"}, {"userWallet", "outputToken", "inputAmount"}),
        (order_body(inputAmout="1"), {"inputAmout"}),
        (order_body(userWallet="not-base58-0OIl"), {"userWallet"}),
        (order_body(inputToken="DOGE"), {"inputToken"}),
        (order_body(outputToken="SOL"), {"outputToken"}),
        (order_body(inputAmount="0"), {"inputAmount"}),
        (order_body(inputAmount=-1), {"inputAmount"}),
        (order_body(inputAmount="0.0000000001"), {"inputAmount"}),
        (order_body(inputAmount="NaN"), {"inputAmount"}),
        (order_body(inputAmount=True), {"inputAmount"}),
        (order_body(slippageBps=5001), {"slippageBps"}),
        (order_body(slippageBps="50"), {"slippageBps"}),
        (order_body(type="stop"), {"type"}),
        (order_body(expiresAt="2030-01-01T00:00:00Z"), {"expiresAt"}),
        (order_body(userWallet=WALLET[:-4], inputAmount="0"), {"userWallet", "inputAmount"}),
        ([order_body()], {"body"}),
    ],
)
async def test_invalid_order_body_is_400_naming_fields_and_stores_nothing(
    client: Client,
    db: asyncpg.Connection,
    redis: aioredis.Redis,
    redis_prefix: str,
    path: str,
    body: Any,
    fields: set[str],
) -> None:
    error = await error_of(await client.post(path, json=body), 400, "validation_error")
    assert {d["field"] for d in error["details"]} == fields
    assert all(d["message"] for d in error["details"])
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    assert await redis.xlen(f"{redis_prefix}orders") == 0


async def test_body_that_is_not_json_is_400_invalid_json(client: Client) -> None:
    for raw in (b"{", b"", b'{"inputAmount": NaN}'):
        resp = await client.post(
            "/api/orders", data=raw, headers={"Content-Type": "application/json"}
        )
        await error_of(resp, 400, "invalid_json")


async def test_non_json_content_type_is_415(client: Client) -> None:
    resp = await client.post("/api/orders/execute", data="userWallet=x")
    await error_of(resp, 415, "unsupported_media_type")


async def test_body_over_the_limit_is_413(start_app: AppClient, db: asyncpg.Connection) -> None:
    client = await start_app(max_body_bytes=1024)
    body = order_body(padding="x" * 2048)
    await error_of(await client.post("/api/orders", json=body), 413, "payload_too_large")
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


@pytest.mark.parametrize("suffix", ["", "/events"])
async def test_order_routes_answer_400_for_bad_ids_and_404_for_unknown(
    client: Client, suffix: str
) -> None:
    await error_of(await client.get(f"/api/orders/nope{suffix}"), 400, "invalid_order_id")
    await error_of(await client.get(f"/api/orders/{UNKNOWN_ID}{suffix}"), 404, "order_not_found")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=garbage", "cursor"),
    ],
)
async def test_wallet_listing_rejects_bad_parameters(
    client: Client, query: str, field: str
) -> None:
    error = await error_of(
        await client.get(f"/api/orders/user/{WALLET}{query}"), 400, "validation_error"
    )
    assert [d["field"] for d in error["details"]] == [field]


async def test_wallet_listing_rejects_a_wallet_that_is_not_an_address(client: Client) -> None:
    error = await error_of(await client.get("/api/orders/user/0xdeadbeef"), 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["wallet"]


async def test_unknown_route_is_404_and_wrong_method_405(client: Client) -> None:
    await error_of(await client.get("/api/nothing-here"), 404, "not_found")
    resp = await client.delete("/api/orders")
    await error_of(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


POST_ROUTES = [
    "/api/orders",
    "/api/orders/execute",
    f"/api/orders/{UNKNOWN_ID}/execute",
    f"/api/orders/{UNKNOWN_ID}/cancel",
]


@pytest.mark.parametrize("path", POST_ROUTES)
async def test_every_post_refuses_a_body_that_is_not_json_with_415(
    client: Client, db: asyncpg.Connection, path: str
) -> None:
    for headers in (
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ):
        resp = await client.post(path, data=b"{}", headers=headers)
        await error_of(resp, 415, "unsupported_media_type")
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


@pytest.mark.parametrize("path", POST_ROUTES)
async def test_every_post_refuses_a_body_over_the_limit_with_413(
    start_app: AppClient, db: asyncpg.Connection, path: str
) -> None:
    client = await start_app(max_body_bytes=1024)
    resp = await client.post(path, json=order_body(padding="x" * 2048))
    await error_of(resp, 413, "payload_too_large")
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


async def test_a_chunked_body_over_the_limit_is_413(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    client = await start_app(max_body_bytes=1024)

    async def chunks() -> Any:
        yield b'{"userWallet": "'
        yield b"x" * 4096
        yield b'"}'

    resp = await client.post(
        "/api/orders", data=chunks(), headers={"Content-Type": "application/json"}
    )
    await error_of(resp, 413, "payload_too_large")
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard",
        "/api",
        "/api/order",
        f"/api/orders/user/{WALLET}/x",
        f"/api/orders/{UNKNOWN_ID}/nothing",
        "/ws",
    ],
)
async def test_unknown_routes_are_404_not_found(client: Client, path: str) -> None:
    await error_of(await client.get(path), 404, "not_found")
    # A body on an unknown route does not turn the 404 into a 415.
    await error_of(await client.post(path, data=b"x"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/orders", "POST"),
        ("PUT", "/api/orders/execute", "POST"),
        ("DELETE", f"/api/orders/{UNKNOWN_ID}", "GET"),
        ("GET", f"/api/orders/{UNKNOWN_ID}/execute", "POST"),
        ("GET", f"/api/orders/{UNKNOWN_ID}/cancel", "POST"),
        ("POST", f"/api/orders/{UNKNOWN_ID}/events", "GET"),
        ("POST", f"/api/orders/user/{WALLET}", "GET"),
        ("POST", "/health", "GET"),
    ],
)
async def test_wrong_methods_are_405_with_allow(
    client: Client, method: str, path: str, allowed: str
) -> None:
    resp = await client.request(method, path)
    await error_of(resp, 405, "method_not_allowed")
    assert allowed in resp.headers["Allow"]
