"""GET /api/orders/user/{wallet}: the status filter, through the real app."""

from __future__ import annotations

import asyncpg

from tests.integration.test_api_errors import error_of
from tests.support import OTHER_WALLET, WALLET, Client, order_body


async def test_status_filter_pages_only_that_status_newest_first(
    client: Client, db: asyncpg.Connection
) -> None:
    ids = []
    for i in range(6):
        resp = await client.post("/api/orders", json=order_body(inputAmount=i + 1))
        ids.append((await resp.json())["orderId"])
    await client.post("/api/orders", json=order_body(userWallet=OTHER_WALLET))
    cancelled = ids[0::2]
    for order_id in cancelled:
        assert (await client.post(f"/api/orders/{order_id}/cancel")).status == 200

    seen: list[str] = []
    cursor = None
    while True:
        query = "?status=cancelled&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(f"/api/orders/user/{WALLET}{query}")).json()
        assert {o["status"] for o in body["orders"]} <= {"cancelled"}
        seen.extend(o["orderId"] for o in body["orders"])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == cancelled[::-1]

    body = await (await client.get(f"/api/orders/user/{WALLET}?status=pending")).json()
    assert [o["orderId"] for o in body["orders"]] == [i for i in ids if i not in cancelled][::-1]
    body = await (await client.get(f"/api/orders/user/{WALLET}?status=confirmed")).json()
    assert body == {"orders": [], "nextCursor": None}


async def test_status_filter_rejects_an_unknown_status(client: Client) -> None:
    error = await error_of(
        await client.get(f"/api/orders/user/{WALLET}?status=done"), 400, "validation_error"
    )
    assert [d["field"] for d in error["details"]] == ["status"]
