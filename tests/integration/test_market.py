"""GET /api/tokens and GET /api/quote through the real app: prices without orders."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from order_engine.routing.tokens import TOKENS
from tests.conftest import AppClient
from tests.integration.test_api_errors import error_of
from tests.support import Client, execute, follow_order


async def test_tokens_lists_every_supported_token(client: Client) -> None:
    resp = await client.get("/api/tokens")
    assert resp.status == 200
    tokens = (await resp.json())["tokens"]
    assert {t["symbol"] for t in tokens} == set(TOKENS)
    sol = next(t for t in tokens if t["symbol"] == "SOL")
    assert sol == {
        "symbol": "SOL",
        "mint": "So11111111111111111111111111111111111111112",
        "decimals": 9,
    }


async def test_quote_gives_every_dex_and_the_best_route_and_makes_no_order(
    client: Client, db: asyncpg.Connection
) -> None:
    resp = await client.get("/api/quote?inputToken=SOL&outputToken=USDC&inputAmount=10")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert {q["dex"] for q in body["quotes"]} == {"raydium", "meteora"}
    for q in body["quotes"]:
        assert {"dex", "amountOut", "price", "feeBps", "priceImpactBps"} <= set(q)
        assert isinstance(q["amountOut"], str)
        assert Decimal(q["price"]) == Decimal(q["amountOut"]) / 10
    # The best route pays at least the best single DEX (more, when a split pays more).
    best_single = max(Decimal(q["amountOut"]) for q in body["quotes"])
    best = body["best"]
    assert Decimal(best["amountOut"]) >= best_single
    assert best["legs"][0]["inputToken"] == "SOL"
    assert best["legs"][-1]["outputToken"] == "USDC"
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


async def test_quote_matches_what_an_order_is_routed_at(client: Client) -> None:
    quoted = await (
        await client.get("/api/quote?inputToken=SOL&outputToken=USDC&inputAmount=2")
    ).json()
    order = await execute(client, inputAmount="2")
    routing = (await follow_order(client, order["orderId"]))[1]["data"]
    assert routing["quotes"] == quoted["quotes"]
    assert routing["route"] == quoted["best"]


async def test_quote_of_a_pair_no_dex_trades_is_empty(client: Client) -> None:
    # MEW has no pool on either DEX, so not even a two-hop path reaches it.
    resp = await client.get("/api/quote?inputToken=MEW&outputToken=USDC&inputAmount=1")
    assert resp.status == 200
    body = await resp.json()
    assert body.pop("slot") >= 0
    assert body == {"quotes": [], "best": None}


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("", {"inputToken", "outputToken", "inputAmount"}),
        ("?inputToken=SOL&outputToken=USDC", {"inputAmount"}),
        ("?inputToken=DOGE&outputToken=USDC&inputAmount=1", {"inputToken"}),
        ("?inputToken=SOL&outputToken=SOL&inputAmount=1", {"outputToken"}),
        ("?inputToken=SOL&outputToken=USDC&inputAmount=0", {"inputAmount"}),
        ("?inputToken=SOL&outputToken=USDC&inputAmount=abc", {"inputAmount"}),
        ("?inputToken=SOL&outputToken=USDC&inputAmount=Infinity", {"inputAmount"}),
        ("?inputToken=USDC&outputToken=SOL&inputAmount=0.0000001", {"inputAmount"}),
        ("?inputToken=SOL&outputToken=USDC&inputAmount=1&slippage=5", {"slippage"}),
    ],
)
async def test_quote_rejects_bad_parameters_naming_them(
    client: Client, query: str, fields: set[str]
) -> None:
    error = await error_of(await client.get(f"/api/quote{query}"), 400, "validation_error")
    assert {d["field"] for d in error["details"]} == fields


async def test_quote_is_503_when_no_dex_answers_in_time(start_app: AppClient) -> None:
    client = await start_app(mock_dex_quote_delay_ms=500, quote_timeout_ms=20)
    resp = await client.get("/api/quote?inputToken=SOL&outputToken=USDC&inputAmount=1")
    await error_of(resp, 503, "unavailable")
    assert "Retry-After" in resp.headers


async def test_quote_of_a_large_order_gives_the_split_it_would_be_routed_at(client: Client) -> None:
    """The best route of a quote is the route itself, legs and all, not a summary of it."""
    quoted = await (
        await client.get("/api/quote?inputToken=SOL&outputToken=USDC&inputAmount=5000")
    ).json()
    best = quoted["best"]
    assert best["kind"] == "split"
    assert {leg["dex"] for leg in best["legs"]} == {"raydium", "meteora"}
    order = await execute(client, inputAmount="5000")
    routing = (await follow_order(client, order["orderId"]))[1]["data"]
    assert routing["route"] == best
