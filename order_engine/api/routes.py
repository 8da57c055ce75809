"""Every route of the application, in one table."""

from __future__ import annotations

from aiohttp import web

from order_engine.api import dev, health, orders, ws
from order_engine.appkeys import SETTINGS


def setup_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post("/api/orders", orders.create_order),
            web.post("/api/orders/execute", orders.execute_new_order),
            # Before /api/orders/{orderId}/events, which "user/<wallet>" would also fit.
            web.get("/api/orders/user/{wallet}", orders.list_wallet_orders),
            web.get("/api/orders/{orderId}", orders.get_order),
            web.get("/api/orders/{orderId}/events", orders.get_events),
            web.get("/ws/orders/{orderId}", ws.order_socket),
            web.get("/health", health.health),
        ]
    )
    # Not even registered in production, so there it is an ordinary unknown route (404).
    if not app[SETTINGS].is_production:
        app.router.add_post("/api/dev/pools", dev.launch_pool)
