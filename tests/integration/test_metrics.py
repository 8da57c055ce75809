"""GET /metrics through the real app: what the counters and histograms say after orders."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AppClient
from tests.support import Client, execute, follow_order, order_body


async def families(client: Client) -> list[Metric]:
    """/metrics, parsed by the Prometheus text parser as a scraper would read it."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    return list(text_string_to_metric_families(await resp.text()))


async def samples(client: Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in await families(client)
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
    assert value(found, "order_engine_orders_accepted_total", mode="queued") == 1
    assert value(found, "order_engine_orders_accepted_total", mode="created") == 1
    assert value(found, "order_engine_orders_finished_total", status="confirmed", dex=dex) == 1
    assert value(found, "order_engine_orders_finished_total", status="cancelled", dex="none") == 1
    for status in ("routing", "building", "submitted", "confirmed"):
        assert value(found, "order_engine_order_step_duration_seconds_count", status=status) == 1
    assert (
        value(found, "order_engine_order_accept_to_terminal_seconds_count", status="confirmed") == 1
    )
    assert (
        value(found, "order_engine_order_accept_to_terminal_seconds_count", status="cancelled") == 1
    )
    assert (
        value(
            found,
            "order_engine_http_request_duration_seconds_count",
            method="POST",
            route="/api/orders/execute",
            status="202",
        )
        == 1
    )
    assert (
        value(
            found,
            "order_engine_http_request_duration_seconds_count",
            method="GET",
            route="unmatched",
            status="404",
        )
        == 1
    )
    # The socket that followed the order lasted as long as its client: not a latency.
    assert not [
        labels
        for name, labels in found
        if name == "order_engine_http_request_duration_seconds_count"
        and ("route", "/ws/orders/{orderId}") in labels
    ]
    assert value(found, "order_engine_queue_depth") == 0
    assert value(found, "order_engine_orders_in_flight") == 0


async def test_metrics_count_open_websockets(client: Client) -> None:
    order_id = (await (await client.post("/api/orders", json=order_body())).json())["orderId"]
    ws = await client.ws_connect(f"/ws/orders/{order_id}")
    await ws.receive_json(timeout=5)  # the replayed pending event: the socket is registered
    found = await samples(client)
    assert value(found, "order_engine_websockets_open") == 1
    await ws.close()


async def test_metrics_count_retries(start_app: AppClient) -> None:
    """Every attempt refused by the DEX: two retries scheduled, then the order fails."""
    client = await start_app(mock_dex_failure_rate=1.0)
    done = await execute(client)
    await follow_order(client, done["orderId"])
    found = await samples(client)
    assert value(found, "order_engine_order_retries_total", code="dex_error") == 2
    assert (
        value(found, "order_engine_orders_finished_total", status="failed", dex="raydium")
        + value(found, "order_engine_orders_finished_total", status="failed", dex="meteora")
        == 1
    )
    assert value(found, "order_engine_retries_scheduled") == 0
    assert value(found, "order_engine_orders_dead_lettered_total") == 0


STANDARD_PREFIXES = ("process_", "python_")


async def test_every_series_is_namespaced_or_standard_and_none_is_created(client: Client) -> None:
    """The engine's own series all start with order_engine_, the process and Python
    collectors are there, and no counter or histogram exports a _created series."""
    await execute(client)
    found = await families(client)
    names = {s.name for family in found for s in family.samples}
    assert not [n for n in names if not n.startswith(("order_engine_", *STANDARD_PREFIXES))]
    assert not [n for n in names if n.endswith("_created")]
    for standard in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert standard in names, standard
    assert "order_engine_orders_accepted_total" in names


DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "order-engine.json"
SERIES = re.compile(r"\b((?:order_engine|process|python)_[a-z_]+)\b")


def _exported(found: list[Metric]) -> set[str]:
    """Every series name a query may use: each sample's, and each family's own names,
    since a labelled counter or histogram has no samples until it is first observed."""
    names = {s.name for family in found for s in family.samples}
    for family in found:
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{part}" for part in ("bucket", "count", "sum"))
    return names


async def test_the_grafana_dashboard_queries_only_series_the_engine_exports(
    client: Client,
) -> None:
    """A renamed metric must not leave a dashboard panel silently empty."""
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in SERIES.findall(target["expr"])
    }
    assert len(queried) >= 10
    assert queried - _exported(await families(client)) == set()
