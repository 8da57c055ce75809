"""Every route of the application, in one table: the API's, then the browser pages'."""

from __future__ import annotations

from aiohttp import web

from order_engine.api import asyncapi, dashboard, dev, health, market, metrics, openapi, orders, ws
from order_engine.api.appkeys import SETTINGS
from order_engine.api.idempotency import idempotent


def setup_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post("/api/orders", idempotent(orders.create_order)),
            web.post("/api/orders/execute", idempotent(orders.execute_new_order)),
            # Before /api/orders/{orderId}, which "execute" would also fit.
            web.get("/api/orders/execute", ws.execute_socket),
            # Before /api/orders/{orderId}/events, which "user/<wallet>" would also fit.
            web.get("/api/orders/user/{wallet}", orders.list_wallet_orders),
            web.get("/api/orders/{orderId}", orders.get_order),
            web.get("/api/orders/{orderId}/events", orders.get_events),
            web.post("/api/orders/{orderId}/execute", orders.execute_order),
            web.post("/api/orders/{orderId}/cancel", orders.cancel_order),
            web.get("/ws/orders", ws.wallet_socket),
            web.get("/ws/orders/{orderId}", ws.order_socket),
            web.get("/api/tokens", market.tokens),
            web.get("/api/quote", market.quote),
            web.get("/api/stats", metrics.stats),
            web.get("/livez", health.livez),
            web.get("/readyz", health.readyz),
            web.get("/health", health.readyz),
            web.get("/metrics", metrics.metrics),
            web.get("/openapi.json", openapi.openapi),
            web.get("/asyncapi.json", asyncapi.asyncapi),
        ]
    )
    app.router.add_routes(dashboard.ui_routes())
    # Not even registered in production, so there it is an ordinary unknown route (404).
    if not app[SETTINGS].is_production:
        app.router.add_post("/api/dev/pools", dev.launch_pool)
