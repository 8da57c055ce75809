"""clientOrderId: the client's own name for an order, unique per wallet, echoed in the
order and its events, refused 409 when repeated, and a filter of the wallet listing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.integration.test_api_errors import error_of
from tests.support import OTHER_WALLET, WALLET, Client, follow_order, order_body


async def test_the_order_and_every_event_echo_the_client_order_id(client: Client) -> None:
    resp = await client.post("/api/orders/execute", json=order_body(clientOrderId="buy-1"))
    assert resp.status == 202
    order = await resp.json()
    assert order["clientOrderId"] == "buy-1"
    messages = await follow_order(client, order["orderId"])
    assert {m["clientOrderId"] for m in messages} == {"buy-1"}
    events = (await (await client.get(f"/api/orders/{order['orderId']}/events")).json())["events"]
    assert {e["clientOrderId"] for e in events} == {"buy-1"}
    fetched = await (await client.get(f"/api/orders/{order['orderId']}")).json()
    assert fetched["clientOrderId"] == "buy-1"


async def test_an_order_without_one_has_null_and_its_events_no_such_key(client: Client) -> None:
    order = await (await client.post("/api/orders", json=order_body())).json()
    assert order["clientOrderId"] is None
    events = (await (await client.get(f"/api/orders/{order['orderId']}/events")).json())["events"]
    assert "clientOrderId" not in events[0]


@pytest.mark.parametrize("path", ["/api/orders", "/api/orders/execute"])
async def test_a_repeat_is_409_naming_the_existing_order_and_makes_none(
    client: Client, db: asyncpg.Connection, path: str
) -> None:
    first = await (await client.post(path, json=order_body(clientOrderId="a:1"))).json()
    resp = await client.post(path, json=order_body(clientOrderId="a:1", inputAmount="2"))
    error = await error_of(resp, 409, "duplicate_client_order_id")
    assert error["orderId"] == first["orderId"]
    assert first["orderId"] in error["message"]
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    # Unique per wallet: another wallet may use the same name.
    other = await client.post(path, json=order_body(clientOrderId="a:1", userWallet=OTHER_WALLET))
    assert other.status in (201, 202)
    if path.endswith("execute"):
        for order_id in (first["orderId"], (await other.json())["orderId"]):
            await follow_order(client, order_id)


async def test_the_execute_socket_refuses_a_repeat_with_4409(client: Client) -> None:
    first = await (await client.post("/api/orders", json=order_body(clientOrderId="ws"))).json()
    ws = await client.ws_connect("/api/orders/execute")
    await ws.send_json(order_body(clientOrderId="ws"))
    messages = [msg.json() async for msg in ws]
    assert ws.close_code == 4409
    assert messages == [
        {
            "type": "error",
            "code": "duplicate_client_order_id",
            "message": messages[0]["message"],
            "orderId": first["orderId"],
        }
    ]


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "é"])
async def test_a_malformed_client_order_id_is_400_naming_the_field(
    client: Client, db: asyncpg.Connection, bad: str
) -> None:
    resp = await client.post("/api/orders", json=order_body(clientOrderId=bad))
    error = await error_of(resp, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["clientOrderId"]
    listing = await client.get(f"/api/orders/user/{WALLET}", params={"clientOrderId": bad})
    await error_of(listing, 400, "validation_error")
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


async def test_the_wallet_listing_filters_by_client_order_id(client: Client) -> None:
    named = await (await client.post("/api/orders", json=order_body(clientOrderId="n-1"))).json()
    for _ in range(2):
        await client.post("/api/orders", json=order_body())
    url = f"/api/orders/user/{WALLET}"
    page = await (await client.get(url, params={"clientOrderId": "n-1"})).json()
    assert [o["orderId"] for o in page["orders"]] == [named["orderId"]]
    assert page["nextCursor"] is None
    page = await (await client.get(url, params={"clientOrderId": "n-1", "status": "failed"})).json()
    assert page["orders"] == []
    page = await (await client.get(url, params={"clientOrderId": "n-2"})).json()
    assert page["orders"] == []
    other = f"/api/orders/user/{OTHER_WALLET}"
    assert (await (await client.get(other, params={"clientOrderId": "n-1"})).json())["orders"] == []


async def test_concurrent_submissions_of_one_name_make_one_order_and_refuse_the_rest(
    client: Client, db: asyncpg.Connection
) -> None:
    """Submitted together they share one batched insert: the others in the batch, of
    other names, go through; of the same name, one order is made and the rest are
    refused naming it."""
    bodies = [order_body(clientOrderId="same")] * 4 + [order_body(clientOrderId="other")]
    responses = await asyncio.gather(*(client.post("/api/orders", json=b) for b in bodies))
    made = [await r.json() for r in responses if r.status == 201]
    assert sorted(o["clientOrderId"] for o in made) == ["other", "same"]
    same = next(o["orderId"] for o in made if o["clientOrderId"] == "same")
    for resp in responses:
        if resp.status != 201:
            assert (await error_of(resp, 409, "duplicate_client_order_id"))["orderId"] == same
    assert await db.fetchval("SELECT count(*) FROM orders") == 2
