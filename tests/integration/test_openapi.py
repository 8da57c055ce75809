"""/openapi.json and /asyncapi.json against the live app: the routes they list, and real
responses and socket messages checked against their closed schemas."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import AppClient
from tests.support import (
    WALLET,
    Client,
    api_routes,
    execute,
    follow,
    follow_order,
    order_body,
    schema_errors,
)

METHODS = {"get", "post", "put", "patch", "delete"}


async def documents(client: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    openapi = await (await client.get("/openapi.json")).json()
    asyncapi = await (await client.get("/asyncapi.json")).json()
    return openapi, asyncapi


async def test_document_lists_exactly_the_registered_routes(client: Client) -> None:
    openapi, _ = await documents(client)
    assert openapi["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, item in openapi["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == api_routes()


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


async def test_every_reference_of_both_documents_resolves(client: Client) -> None:
    openapi, asyncapi = await documents(client)
    assert asyncapi["asyncapi"].startswith("3.")
    for document in (openapi, asyncapi):
        for ref in refs(document):
            assert resolve(document, ref) is not None, ref


async def test_a_lifecycle_over_the_execute_socket_fits_the_asyncapi_messages(
    client: Client,
) -> None:
    """accepted, every status message, and /events and the order after it, each against
    its closed schema; a refused order body gets an error message of the documented shape."""
    openapi, asyncapi = await documents(client)
    ws = await client.ws_connect("/api/orders/execute")
    await ws.send_json(order_body(inputAmount="2000"))
    received = [msg.json() async for msg in ws]
    assert [m["type"] for m in received] == ["accepted"] + ["status"] * 5
    for message in received:
        payload = f"{message['type']}/payload"
        assert schema_errors(asyncapi, payload, message, under="components/messages") == []
    order_id = received[0]["order"]["orderId"]
    assert received[2]["data"]["route"]["kind"] == "split"

    bad = await client.ws_connect("/api/orders/execute")
    await bad.send_json(order_body(inputAmount="0", type="limit"))
    (error,) = [msg.json() async for msg in bad]
    assert bad.close_code == 4400
    assert schema_errors(asyncapi, "error/payload", error, under="components/messages") == []

    events = await (await client.get(f"/api/orders/{order_id}/events")).json()
    assert [e["status"] for e in events["events"]][-1] == "confirmed"
    for event in events["events"]:
        assert schema_errors(openapi, "StatusMessage", event) == []
    order = await (await client.get(f"/api/orders/{order_id}")).json()
    assert schema_errors(openapi, "Order", order) == []


@pytest.mark.parametrize(
    ("changes", "body", "end"),
    [
        ({"mock_dex_failure_rate": 1.0, "retry_max_attempts": 2}, {}, "failed"),
        ({}, {"outputToken": "POPCAT"}, "failed"),
    ],
    ids=["retried-then-failed", "no-route"],
)
async def test_retry_and_failure_events_fit_the_status_message_schema(
    start_app: AppClient, changes: dict[str, Any], body: dict[str, Any], end: str
) -> None:
    """The data of a retry (attempt, code, reason, retryInMs, the rebuilt transaction) and
    of a failure are documented keys of the documented types."""
    client = await start_app(**changes)
    openapi, _ = await documents(client)
    order = await execute(client, **body)
    messages = await follow_order(client, order["orderId"])
    assert messages[-1]["status"] == end
    for message in messages:
        assert schema_errors(openapi, "StatusMessage", message) == [], message


async def test_cancelled_order_wallet_listing_health_and_stats_fit_their_schemas(
    client: Client,
) -> None:
    openapi, _ = await documents(client)
    created = await (await client.post("/api/orders", json=order_body())).json()
    cancelled = await (await client.post(f"/api/orders/{created['orderId']}/cancel")).json()
    assert schema_errors(openapi, "Order", cancelled) == []
    messages, _ = await follow(client, f"/ws/orders/{created['orderId']}")
    for message in messages:
        assert schema_errors(openapi, "StatusMessage", message) == []

    listing = await (await client.get(f"/api/orders/user/{WALLET}")).json()
    for order in listing["orders"]:
        assert schema_errors(openapi, "Order", order) == []
    health = await (await client.get("/health")).json()
    assert schema_errors(openapi, "Health", health) == []
    assert schema_errors(openapi, "Health", {**health, "chain": "ok"}) == []
    assert schema_errors(openapi, "Health", {**health, "chain": 3}) != []

    await execute(client)
    stats = await (await client.get("/api/stats")).json()
    assert schema_errors(openapi, "Stats", stats) == []


async def test_browser_pages_stay_open_when_api_keys_are_set(start_app: AppClient) -> None:
    """/, /docs, /redoc and their files need no key, like /openapi.json and /health: they
    hold no data. /api/stats, which does, needs one."""
    client = await start_app(api_keys=("k",))
    for path in (
        "/",
        "/docs",
        "/redoc",
        "/static/app.js",
        "/docs/assets/swagger-ui-bundle.js",
        "/redoc/assets/redoc.standalone.js",
        "/openapi.json",
        "/asyncapi.json",
    ):
        resp = await client.get(path)
        assert resp.status == 200, path
    assert (await client.get("/api/stats")).status == 401
    assert (await client.get("/api/stats", headers={"X-API-Key": "k"})).status == 200
    assert "javascript" in (await client.get("/static/app.js")).content_type
