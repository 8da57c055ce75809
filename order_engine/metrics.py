"""Prometheus metrics of one process, in a registry of its own (one per application).

Every name starts with `order_engine_`; the registry also holds the standard process,
platform and garbage-collector series (`process_*`, `python_*`), as any Python exporter
has them. No `_created` series: they double the output and no dashboard reads them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar, cast

import attrs
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

from order_engine.domain.events import Failed, OrderEvent, RetryScheduled
from order_engine.domain.orders import FailureCode, Order, OrderStatus

# Seconds; the simulated DEX takes 0.2 s to quote and 2.5 s to execute by default.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ORDER_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
RECENT_WINDOW_S = 60
M = TypeVar("M", bound=MetricWrapperBase)


@attrs.define
class Second:
    """What this process saw in one wall-clock second."""

    at: int
    accepted: int = 0
    confirmed: int = 0
    failed: int = 0
    latencies_s: list[float] = attrs.Factory(list)
    """accept -> confirmed of each order confirmed in this second."""

    def percentile_ms(self, q: float) -> float | None:
        """Nearest rank; None when no order was confirmed in this second."""
        if not self.latencies_s:
            return None
        ranked = sorted(self.latencies_s)
        return round(ranked[max(math.ceil(q * len(ranked)) - 1, 0)] * 1000, 3)


class RecentOrders:
    """Orders accepted and finished a second over the last `window_s` seconds, with the
    latencies of those confirmed: the dashboard's live charts, exact where a histogram's
    buckets are too coarse for milliseconds."""

    def __init__(
        self, window_s: int = RECENT_WINDOW_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._seconds: deque[Second] = deque()

    def _now(self) -> Second:
        now = int(self._clock())
        while self._seconds and self._seconds[0].at <= now - self.window_s:
            self._seconds.popleft()
        if not self._seconds or self._seconds[-1].at != now:
            self._seconds.append(Second(now))
        return self._seconds[-1]

    def accepted(self) -> None:
        self._now().accepted += 1

    def finished(self, status: OrderStatus, latency_s: float) -> None:
        second = self._now()
        if status is OrderStatus.CONFIRMED:
            second.confirmed += 1
            second.latencies_s.append(latency_s)
        elif status is OrderStatus.FAILED:
            second.failed += 1

    def series(self) -> list[Second]:
        """Every whole second of the window, oldest first; the current one is left out
        because it is still counting."""
        now = self._now().at
        seen = {s.at: s for s in self._seconds}
        return [seen.get(at, Second(at)) for at in range(now - self.window_s + 1, now)]


NAMESPACE = "order_engine"

# A switch of the library, not of a registry: set once, for every registry of the process.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.recent = RecentOrders()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.orders_accepted = Counter(
            "orders_accepted",
            "Orders accepted, by how: created (pending) or queued for execution",
            ["mode"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.orders_finished = Counter(
            "orders_finished",
            "Orders that reached a terminal status, by status and DEX ('none' if unrouted)",
            ["status", "dex"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP handler latency, by method, route template and status",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.step_duration = Histogram(
            "order_step_duration_seconds",
            "Time from an order's previous status to the status named, as the executor moved it",
            ["status"],
            buckets=STEP_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.accept_to_terminal = Histogram(
            "order_accept_to_terminal_seconds",
            "Time from an order's creation to its terminal status",
            ["status"],
            buckets=ORDER_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.retries = Counter(
            "order_retries",
            "Attempts scheduled after a transient failure, by failure code",
            ["code"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "orders_dead_lettered",
            "Orders failed because their queue entry was delivered too often",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.retries_scheduled = Gauge(
            "retries_scheduled",
            "Orders waiting in the retry schedule for their next attempt; NaN if unknown",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "queue_depth",
            "Queue entries not yet acknowledged (waiting or being worked on); NaN if unknown",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "orders_in_flight",
            "Orders this process is executing now",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.slot_duration = Histogram(
            "chain_slot_duration_seconds",
            "Time this process took to close a slot of the simulated chain, commit included",
            buckets=STEP_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.chain_transactions = Counter(
            "chain_transactions",
            "Transactions this process's slots applied or expired, by outcome",
            ["status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.trigger_check = Histogram(
            "trigger_check_seconds",
            "Time the trigger watcher took after a slot to decide which resting orders fire",
            buckets=STEP_BUCKETS,
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.triggered = Counter(
            "resting_orders_ended",
            "Resting orders this process fired or expired, by what it did",
            ["action"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.resting = Gauge(
            "resting_orders",
            "Resting orders in this process's trigger index (0 where it does not watch)",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.websockets = Gauge(
            "websockets_open",
            "WebSockets open on this process",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._children: dict[tuple[object, ...], MetricWrapperBase] = {}

    def _child(self, metric: M, *values: str) -> M:
        """metric.labels(*values), kept: labels() costs more than what is then counted."""
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return cast(M, child)

    def accepted(self, *, queued: bool) -> None:
        self._child(self.orders_accepted, "queued" if queued else "created").inc()
        self.recent.accepted()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.http_duration, method, route, str(status)).observe(seconds)

    def slot_closed(self, seconds: float, statuses: Iterable[str]) -> None:
        self.slot_duration.observe(seconds)
        for status in statuses:
            self._child(self.chain_transactions, status).inc()

    def trigger_pass(self, check_s: float, *, fired: int, expired: int, resting: int) -> None:
        self.trigger_check.observe(check_s)
        self._child(self.triggered, "fired").inc(fired)
        self._child(self.triggered, "expired").inc(expired)
        self.resting.set(resting)

    def transition(self, order: Order, event: OrderEvent, since: datetime | None) -> None:
        """Observe a committed status change; `since` is when the previous status began."""
        if since is not None:
            self._child(self.step_duration, event.status.value).observe(
                max((event.timestamp - since).total_seconds(), 0.0)
            )
        data = event.data
        if isinstance(data, RetryScheduled):
            self._child(self.retries, data.code).inc()
        if isinstance(data, Failed) and data.code == FailureCode.DEAD_LETTERED:
            self.dead_letters.inc()
        if event.status.is_terminal:
            latency_s = max((event.timestamp - order.created_at).total_seconds(), 0.0)
            status = event.status.value
            self._child(self.orders_finished, status, order.dex or "none").inc()
            self._child(self.accept_to_terminal, status).observe(latency_s)
            self.recent.finished(event.status, latency_s)

    def exposition(
        self,
        *,
        queue_depth: int | None,
        retries_scheduled: int | None,
        in_flight: int,
        websockets: int,
    ) -> bytes:
        self.queue_depth.set(float("nan") if queue_depth is None else queue_depth)
        self.retries_scheduled.set(float("nan") if retries_scheduled is None else retries_scheduled)
        self.in_flight.set(in_flight)
        self.websockets.set(websockets)
        return generate_latest(self.registry)
