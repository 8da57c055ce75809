"""POST /api/dev/pools: launching a pool by hand, outside production only."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from order_engine.api.appkeys import CHAIN_CLIENT
from tests.conftest import AppClient
from tests.support import STATUS_PATH, Client, execute, follow_order

POOL = {
    "dex": "raydium",
    "tokenA": "POPCAT",
    "tokenB": "SOL",
    "reserveA": "5000000",
    "reserveB": "250.5",
}


async def test_launched_pool_is_traded_from_the_next_slot(client: Client) -> None:
    before = client.app[CHAIN_CLIENT].slot
    resp = await client.post("/api/dev/pools", json=POOL)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body.pop("tradingFromSlot") > before
    assert body == {
        "dex": "raydium",
        "tokenA": "POPCAT",
        "tokenB": "SOL",
        "reserveA": "5000000",
        "reserveB": "250.5",
        "price": "0.0000501",
    }
    # POPCAT had no pool at all; now POPCAT -> SOL -> USDC reaches it.
    accepted = await execute(client, inputToken="POPCAT", outputToken="USDC", inputAmount="1000")
    messages = await follow_order(client, accepted["orderId"])
    assert [m["status"] for m in messages] == STATUS_PATH
    legs = messages[1]["data"]["route"]["legs"]
    assert (legs[0]["dex"], legs[0]["inputToken"], legs[-1]["outputToken"]) == (
        "raydium",
        "POPCAT",
        "USDC",
    )


async def test_a_second_pool_for_the_pair_on_that_dex_is_a_conflict(
    client: Client, db: asyncpg.Connection
) -> None:
    assert (await client.post("/api/dev/pools", json=POOL)).status == 201
    # The same pair named the other way round is the same pool.
    flipped = {**POOL, "tokenA": "SOL", "tokenB": "POPCAT", "reserveA": "1", "reserveB": "9"}
    resp = await client.post("/api/dev/pools", json=flipped)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "pool_exists"
    rows = await db.fetch("SELECT reserve_b FROM chain_pools WHERE 'POPCAT' IN (token_a, token_b)")
    assert [r["reserve_b"] for r in rows] == [Decimal("250.5")]


async def test_bad_pool_names_every_field_and_launches_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    body = {"dex": "orca", "tokenA": "MEW", "tokenB": "MEW", "reserveA": "0", "reserveB": "x"}
    resp = await client.post("/api/dev/pools", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "validation_error"
    assert {d["field"] for d in error["details"]} == {"reserveB"}
    body["reserveB"] = "1"
    resp = await client.post("/api/dev/pools", json=body)
    fields = {d["field"] for d in (await resp.json())["error"]["details"]}
    assert fields == {"dex", "reserveA", "tokenB"}
    assert await db.fetchval("SELECT count(*) FROM chain_pools WHERE token_a = 'MEW'") == 0


async def test_production_has_no_dev_routes(start_app: AppClient) -> None:
    client = await start_app(app_env="production")
    resp = await client.post("/api/dev/pools", json=POOL)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_a_reserve_too_large_to_hold_is_400_not_500(client: Client) -> None:
    # Found by schemathesis: such a reserve overflowed the decimal context (a 500).
    body = {**POOL, "reserveA": 1.7976931348623157e308}
    resp = await client.post("/api/dev/pools", json=body)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert [d["field"] for d in error["details"]] == ["reserveA"]
