"""The wallet socket, the execute socket, heartbeats, slow clients and the per-client cap."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg

from order_engine.api.appkeys import HUB
from order_engine.domain.events import Accepted, OrderEvent
from order_engine.domain.orders import OrderStatus
from tests.conftest import AppClient
from tests.integration.test_api_errors import error_of
from tests.support import OTHER_WALLET, STATUS_PATH, WALLET, Client, execute, follow, order_body


async def test_wallet_socket_streams_every_order_of_its_wallet_only(client: Client) -> None:
    ws = await client.ws_connect(f"/ws/orders?wallet={WALLET}")
    # The socket is subscribed once the server has answered the upgrade; an order of
    # another wallet is executed first, so its events would come before ours.
    await execute(client, userWallet=OTHER_WALLET)
    first = await execute(client)
    second = await execute(client, inputAmount="2")
    ours = {first["orderId"], second["orderId"]}

    seen: dict[str, list[str]] = {order_id: [] for order_id in ours}
    while any(len(s) < len(STATUS_PATH) for s in seen.values()):
        message = await ws.receive_json(timeout=10)
        assert message["type"] == "status"
        assert message["orderId"] in ours
        seen[message["orderId"]].append(message["status"])
    assert all(statuses == STATUS_PATH for statuses in seen.values())
    await ws.close()


async def test_wallet_socket_refuses_a_bad_wallet(client: Client) -> None:
    for query in ("", "?wallet=0xdeadbeef"):
        messages, code = await follow(client, f"/ws/orders{query}")
        assert code == 4400
        assert messages[0]["type"] == "error"
        assert messages[0]["code"] == "validation_error"
        assert messages[0]["details"][0]["field"] == "wallet"


async def test_execute_socket_accepts_an_order_and_streams_it_to_the_end(
    client: Client, db: asyncpg.Connection
) -> None:
    ws = await client.ws_connect("/api/orders/execute")
    await ws.send_json(order_body(inputAmount="3"))
    accepted = await ws.receive_json(timeout=10)
    assert accepted["type"] == "accepted"
    order = accepted["order"]
    assert order["status"] == "pending"
    assert order["inputAmount"] == "3"
    messages = [msg.json() async for msg in ws]
    assert ws.close_code == 1000
    assert [m["status"] for m in messages] == STATUS_PATH
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    assert {m["orderId"] for m in messages} == {order["orderId"]}
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 1


async def test_execute_socket_refuses_a_bad_body_and_stores_nothing(
    client: Client, db: asyncpg.Connection
) -> None:
    for payload, code in (
        (order_body(inputAmount="0"), "validation_error"),
        ("not json", "invalid_json"),
    ):
        ws = await client.ws_connect("/api/orders/execute")
        if isinstance(payload, str):
            await ws.send_str(payload)
        else:
            await ws.send_json(payload)
        messages = [msg.json() async for msg in ws]
        assert ws.close_code == 4400
        assert messages[0]["type"] == "error"
        assert messages[0]["code"] == code
    assert messages[0]["code"] == "invalid_json"
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


async def test_socket_routes_without_an_upgrade_are_400(client: Client) -> None:
    for path in ("/api/orders/execute", f"/ws/orders?wallet={WALLET}"):
        error = await error_of(await client.get(path), 400, "validation_error")
        assert error["details"][0]["field"] == "Upgrade"


async def test_every_socket_is_pinged(start_app: AppClient) -> None:
    client = await start_app(ws_heartbeat_s=0.2)
    order_id = (await (await client.post("/api/orders", json=order_body())).json())["orderId"]
    # since=1: the pending event is not replayed, so a PING is the first message.
    for path in (
        f"/ws/orders/{order_id}?since=1",
        f"/ws/orders?wallet={WALLET}",
        "/api/orders/execute",
    ):
        ws = await client.ws_connect(path, autoping=False)
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.PING, (path, msg)
        await ws.close()


def _event(seq: int) -> OrderEvent:
    return OrderEvent(
        order_id=uuid.uuid4(),
        user_wallet=WALLET,
        seq=seq,
        status=OrderStatus.PENDING,
        timestamp=datetime.now(UTC),
        data=Accepted(),
    )


async def test_a_wallet_client_that_falls_behind_is_closed_with_1013(
    start_app: AppClient,
) -> None:
    client = await start_app(hub_buffer_size=2)
    ws = await client.ws_connect(f"/ws/orders?wallet={WALLET}")
    hub = client.app[HUB]
    assert hub.subscriber_count == 1
    # Delivered in one go, faster than any socket drains: the buffer of 2 overflows.
    for seq in range(1, 6):
        hub.deliver_local(hub.delivery(_event(seq)))
    _ = [msg async for msg in ws]
    assert ws.close_code == 1013
    # The hub is not slowed: the dropped subscriber is gone and others still get events.
    other = await client.ws_connect(f"/ws/orders?wallet={WALLET}")
    hub.deliver_local(hub.delivery(_event(1)))
    assert (await other.receive_json(timeout=5))["seq"] == 1
    await other.close()


# A WebSocket handshake as a raw GET, so that a refusal's HTTP answer can be read.
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def test_sockets_per_client_address_are_capped(start_app: AppClient) -> None:
    client = await start_app(ws_max_per_client=2)
    path = f"/ws/orders?wallet={WALLET}"
    first = await client.ws_connect(path)
    second = await client.ws_connect(path)
    resp = await client.get(path, headers=UPGRADE)
    await error_of(resp, 429, "rate_limited")
    assert "Retry-After" in resp.headers

    await first.close()
    # The server counts the socket down when its handler ends, just after the close
    # handshake; nothing signals that moment, so it is polled for, briefly.
    hub = client.app[HUB]
    for _ in range(500):
        if hub.subscriber_count == 1:
            break
        await asyncio.sleep(0.01)
    third = await client.ws_connect(path)
    await third.close()
    await second.close()


async def test_behind_a_trusted_proxy_the_cap_counts_each_forwarded_client(
    start_app: AppClient,
) -> None:
    """The proxy's own address would hold every client's sockets; with the proxy trusted,
    each client it forwards for has a cap of its own, and only its own."""
    client = await start_app(
        ws_max_per_client=1, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    path = f"/ws/orders?wallet={WALLET}"
    sockets = [
        await client.ws_connect(path, headers={"X-Forwarded-For": address})
        for address in ("198.51.100.1", "198.51.100.2")
    ]
    resp = await client.get(path, headers={**UPGRADE, "X-Forwarded-For": "198.51.100.1"})
    await error_of(resp, 429, "rate_limited")
    for ws in sockets:
        await ws.close()
