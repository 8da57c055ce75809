"""GET /metrics through the real app: what the counters and histograms say after orders."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AppClient
from tests.support import Client, execute, follow_order, order_body


async def samples(client: Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_orders_and_time_every_step(start_app: AppClient) -> None:
    client = await start_app(mock_dex_failure_rate=0.0)
    done = await execute(client)
    messages = await follow_order(client, done["orderId"])
    dex = messages[1]["data"]["dex"]
    created = await (await client.post("/api/orders", json=order_body())).json()
    assert (await client.post(f"/api/orders/{created['orderId']}/cancel")).status == 200
    await client.get("/api/nothing")

    found = await samples(client)
    assert value(found, "orders_accepted_total", mode="queued") == 1
    assert value(found, "orders_accepted_total", mode="created") == 1
    assert value(found, "orders_finished_total", status="confirmed", dex=dex) == 1
    assert value(found, "orders_finished_total", status="cancelled", dex="none") == 1
    for status in ("routing", "building", "submitted", "confirmed"):
        assert value(found, "order_step_duration_seconds_count", status=status) == 1
    assert value(found, "order_accept_to_terminal_seconds_count", status="confirmed") == 1
    assert value(found, "order_accept_to_terminal_seconds_count", status="cancelled") == 1
    assert (
        value(
            found,
            "http_request_duration_seconds_count",
            method="POST",
            route="/api/orders/execute",
            status="202",
        )
        == 1
    )
    assert (
        value(
            found,
            "http_request_duration_seconds_count",
            method="GET",
            route="unmatched",
            status="404",
        )
        == 1
    )
    assert value(found, "queue_depth") == 0
    assert value(found, "orders_in_flight") == 0


async def test_metrics_count_open_websockets(client: Client) -> None:
    order_id = (await (await client.post("/api/orders", json=order_body())).json())["orderId"]
    ws = await client.ws_connect(f"/ws/orders/{order_id}")
    await ws.receive_json(timeout=5)  # the replayed pending event: the socket is registered
    found = await samples(client)
    assert value(found, "websockets_open") == 1
    await ws.close()
