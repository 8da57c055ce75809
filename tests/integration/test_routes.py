"""Split and two-hop routes, price moves and slow venues, through the real app and chain."""

from __future__ import annotations

import logging
import random
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from order_engine.api.appkeys import CHAIN_CLIENT
from order_engine.chain.market import Market, genesis_pools, listed_pools
from order_engine.chain.venues import chain_venues
from order_engine.routing.router import Router
from order_engine.routing.tokens import TOKENS
from tests.conftest import AppClient
from tests.support import STATUS_PATH, Client, execute, follow_order


async def _run(client: Client, **body: Any) -> list[dict[str, Any]]:
    accepted = await execute(client, **body)
    return await follow_order(client, str(accepted["orderId"]))


async def test_large_order_is_split_and_settles_both_legs_at_once(
    client: Client, db: asyncpg.Connection
) -> None:
    messages = await _run(client, inputAmount="5000")
    assert [m["status"] for m in messages] == STATUS_PATH
    routing = messages[1]["data"]
    confirmed = messages[-1]["data"]
    route = routing["route"]
    assert routing["dex"] == "split"
    assert route["kind"] == "split"
    assert {leg["dex"] for leg in route["legs"]} == {"raydium", "meteora"}
    assert sum(Decimal(leg["inputAmount"]) for leg in route["legs"]) == 5000
    assert Decimal(route["amountOut"]) > max(Decimal(q["amountOut"]) for q in routing["quotes"])
    # Native SOL in: wrapped before the swap; USDC out: nothing to unwrap.
    assert route["wrapSol"] == "5000"
    assert route["unwrapSol"] is None
    # Nothing else traded, so the pools paid exactly what they quoted.
    assert confirmed["amountOut"] == route["amountOut"]
    row = await db.fetchrow(
        "SELECT dex, amount_out FROM chain_transactions WHERE status = 'landed'"
    )
    assert row is not None
    assert (row["dex"], row["amount_out"]) == ("split", Decimal(route["amountOut"]))
    pool_out = {
        dex: await db.fetchval(
            "SELECT reserve_b FROM chain_pools WHERE dex = $1 AND token_a = 'SOL'"
            " AND token_b = 'USDC'",
            dex,
        )
        for dex in ("raydium", "meteora")
    }
    assert pool_out["raydium"] < Decimal("30000000")
    assert pool_out["meteora"] < Decimal("4506000")


async def test_pair_without_a_pool_settles_through_a_hub_and_unwraps_sol(
    client: Client, db: asyncpg.Connection
) -> None:
    messages = await _run(client, inputToken="USDT", outputToken="RAY", inputAmount="500")
    assert [m["status"] for m in messages] == STATUS_PATH
    routing = messages[1]["data"]
    assert routing["quotes"] == []
    assert routing["dex"] == "multi"
    first, second = routing["route"]["legs"]
    assert first["inputToken"] == "USDT"
    assert first["outputToken"] == second["inputToken"]
    assert second["outputToken"] == "RAY"
    assert (
        await db.fetchval("SELECT dex FROM chain_transactions WHERE status = 'landed'") == "multi"
    )

    messages = await _run(client, inputToken="USDC", outputToken="SOL", inputAmount="300")
    route = messages[1]["data"]["route"]
    assert route["wrapSol"] is None
    assert route["unwrapSol"] == route["amountOut"]


async def test_seeded_run_gives_each_dex_some_wins(client: Client) -> None:
    rng = random.Random("each-dex-wins")
    pairs = [("SOL", "USDC"), ("USDC", "SOL"), ("SOL", "USDT"), ("USDC", "USDT"), ("WIF", "SOL")]
    winners: list[str] = []
    for _ in range(24):
        src, dst = rng.choice(pairs)
        amount = str(Decimal(rng.choice(["0.5", "2", "40", "900", "6000"])))
        if src in ("USDC", "USDT"):
            amount = str(Decimal(amount) * 150)
        messages = await _run(client, inputToken=src, outputToken=dst, inputAmount=amount)
        assert messages[-1]["status"] == "confirmed", messages[-1]
        route = messages[1]["data"]["route"]
        if route["kind"] != "two-hop":
            # A split is won by the DEX that took the larger part of the order.
            top = max(route["legs"], key=lambda leg: Decimal(leg["inputAmount"]))
            winners.append(top["dex"])
    assert winners.count("raydium") >= 3, winners
    assert winners.count("meteora") >= 3, winners


async def test_a_swap_landing_first_in_the_slot_trips_the_next_ones_slippage(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    """Two orders quoted on the same pool state land in one slot, in the order sent: the
    first moves the pool so far that the second pays less than its minimum."""
    client = await start_app(mock_dex_execution_delay_ms=300)
    big = await execute(client, inputAmount="3000", slippageBps=5000)
    async with client.ws_connect(f"/ws/orders/{big['orderId']}") as ws:
        # The big swap is sent, and lands in 300 ms: the small one is quoted before that.
        while (await ws.receive_json(timeout=10))["status"] != "submitted":
            pass
        small = await execute(client, inputAmount="2", slippageBps=10)
    big_events = await follow_order(client, big["orderId"])
    small_events = await follow_order(client, small["orderId"])
    assert big_events[-1]["status"] == "confirmed"
    assert [m["status"] for m in small_events] == [*STATUS_PATH[:4], "failed"]
    assert small_events[-1]["data"]["code"] == "slippage_exceeded"
    landed = "SELECT count(*) FROM chain_transactions WHERE status = 'landed'"
    assert await db.fetchval(landed) == 1


async def test_venue_that_times_out_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    market = Market(listed_pools(genesis_pools()))
    raydium, meteora = chain_venues(lambda: market, quote_delay_s=0)
    # Meteora would win 1 SOL -> USDC, but answers long after the timeout.
    meteora.quote_delay_s = 5
    router = Router([raydium, meteora], quote_timeout_s=0.05)
    with caplog.at_level(logging.INFO, logger="order_engine.routing.router"):
        decision = await router.route(TOKENS["SOL"], TOKENS["USDC"], Decimal(1))
    assert [q.dex for q in decision.quotes] == ["raydium"]
    assert decision.route.dex == "raydium"
    # The decision is logged with every route it compared.
    assert "chose direct[raydium:1 SOL->" in caplog.text
    assert "compared direct[raydium:1 SOL->" in caplog.text
    assert "venues left out: meteora" in caplog.text


async def test_quote_is_answered_from_the_view_at_the_slot_it_names(client: Client) -> None:
    """/api/quote says which slot of the chain its prices are from; an order sent then is
    quoted the same."""
    chain = client.app[CHAIN_CLIENT]
    resp = await client.get("/api/quote?inputToken=SOL&outputToken=USDC&inputAmount=2")
    body = await resp.json()
    assert body["slot"] >= 0
    assert body["slot"] <= chain.slot
    messages = await _run(client, inputAmount="2")
    assert messages[1]["data"]["route"] == body["best"]
