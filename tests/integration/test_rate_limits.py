"""Submission limits per wallet and for the service, counted in the real Redis."""

from __future__ import annotations

import asyncpg

from tests.conftest import AppClient
from tests.integration.test_api_errors import error_of
from tests.support import OTHER_WALLET, WALLET, order_body


async def test_a_wallet_over_its_limit_gets_429_and_others_do_not(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    client = await start_app(rate_limit_wallet_per_minute=2)
    for _ in range(2):
        assert (await client.post("/api/orders", json=order_body())).status == 201
    resp = await client.post("/api/orders/execute", json=order_body())
    await error_of(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    ws = await client.ws_connect("/api/orders/execute")
    await ws.send_json(order_body())
    messages = [msg.json() async for msg in ws]
    assert ws.close_code == 4429
    assert messages[0]["code"] == "rate_limited"

    assert (
        await client.post("/api/orders", json=order_body(userWallet=OTHER_WALLET))
    ).status == 201
    assert await db.fetchval("SELECT count(*) FROM orders") == 3


async def test_the_global_limit_counts_every_wallet(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    client = await start_app(rate_limit_global_per_second=1)
    wallets = [WALLET, OTHER_WALLET, WALLET]
    responses = [await client.post("/api/orders", json=order_body(userWallet=w)) for w in wallets]
    # Three requests in well under a second fall into at most two one-second windows,
    # so at least one of them is over the limit of one a second.
    refused = [r for r in responses if r.status == 429]
    assert refused
    for resp in refused:
        await error_of(resp, 429, "rate_limited")
    accepted = [r for r in responses if r.status == 201]
    assert len(accepted) + len(refused) == 3
    assert await db.fetchval("SELECT count(*) FROM orders") == len(accepted)
