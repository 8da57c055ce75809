"""Submission limits per wallet and for the service, counted in the real Redis."""

from __future__ import annotations

import asyncpg

from tests.conftest import AppClient
from tests.integration.test_api_errors import error_of
from tests.support import OTHER_WALLET, WALLET, Client, order_body


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


async def test_order_posts_announce_the_limits_and_what_is_left(start_app: AppClient) -> None:
    """RateLimit-Policy names each configured limit (quota, window); RateLimit says what
    is left of it and when the window ends, on accepted and refused submissions alike."""
    client = await start_app(rate_limit_wallet_per_minute=2, rate_limit_global_per_second=1000)
    first = await client.post("/api/orders", json=order_body())
    assert first.headers["RateLimit-Policy"] == '"global";q=1000;w=1, "wallet";q=2;w=60'
    remaining = _remaining(first.headers["RateLimit"])
    assert remaining["wallet"] == 1
    assert remaining["global"] >= 997  # other submissions may share the one-second window
    second = await client.post("/api/orders/execute", json=order_body())
    assert second.status == 202
    assert _remaining(second.headers["RateLimit"])["wallet"] == 0
    refused = await client.post("/api/orders", json=order_body())
    assert refused.status == 429
    assert _remaining(refused.headers["RateLimit"])["wallet"] == 0
    assert '"wallet";q=2;w=60' in refused.headers["RateLimit-Policy"]
    reset = int(refused.headers["RateLimit"].split('"wallet";r=0;t=')[1])
    assert 1 <= reset <= 60
    assert reset == int(refused.headers["Retry-After"])


async def test_no_rate_limit_headers_without_limits(client: Client) -> None:
    resp = await client.post("/api/orders", json=order_body())
    assert resp.status == 201
    assert "RateLimit" not in resp.headers
    assert "RateLimit-Policy" not in resp.headers


def _remaining(header: str) -> dict[str, int]:
    """`"wallet";r=1;t=60, "global";r=9;t=1` -> {"wallet": 1, "global": 9}"""
    items = (item.strip().split(";") for item in header.split(","))
    return {name.strip('"'): int(r.removeprefix("r=")) for name, r, _ in items}
