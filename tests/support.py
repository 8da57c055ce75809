"""What many tests share: a valid order, and following an order's socket to its end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import jsonschema_rs
from aiohttp import web
from aiohttp.test_utils import TestClient

from order_engine.api.appkeys import SETTINGS
from order_engine.api.dashboard import ui_routes
from order_engine.api.routes import setup_routes
from order_engine.config import Settings
from order_engine.domain.orders import NewOrder, OrderType
from order_engine.domain.routes import Quote
from order_engine.routing.venues import Ask, Venue

WALLET = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
OTHER_WALLET = "DRpbCBMxVnDK7maPM5tGv6MvB3v1sRMC86PZ8okm21hy"
STATUS_PATH = ["pending", "routing", "building", "submitted", "confirmed"]
# RAY trades at 2 USDC (on Raydium alone, and through SOL); this Meteora pool offers 3:
# its launch crosses a RAY -> USDC limit between the two.
RAY_AT_3 = {
    "dex": "meteora",
    "tokenA": "RAY",
    "tokenB": "USDC",
    "reserveA": "100000",
    "reserveB": "300000",
}

Client = TestClient[web.Request, web.Application]


def order_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "userWallet": WALLET,
        "inputToken": "SOL",
        "outputToken": "USDC",
        "inputAmount": "1.5",
    }
    body.update(changes)
    return body


def new_order(input_amount: str = "1", slippage_bps: int = 100) -> NewOrder:
    """A validated SOL -> USDC market order, for tests that go past the API."""
    return NewOrder(
        type=OrderType.MARKET,
        user_wallet=WALLET,
        input_token="SOL",
        output_token="USDC",
        input_amount=Decimal(input_amount),
        slippage_bps=slippage_bps,
        limit_price=None,
        expires_at=None,
    )


async def execute(client: Client, **changes: Any) -> dict[str, Any]:
    resp = await client.post("/api/orders/execute", json=order_body(**changes))
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def follow(client: Client, path: str) -> tuple[list[dict[str, Any]], int | None]:
    """Every message a socket sends until the server closes it, and the close code."""
    ws = await client.ws_connect(path)
    messages = [msg.json() async for msg in ws]
    return messages, ws.close_code


async def follow_order(client: Client, order_id: str) -> list[dict[str, Any]]:
    """The status messages of an order until its socket closes normally after the end."""
    messages, code = await follow(client, f"/ws/orders/{order_id}")
    assert code == 1000, (code, messages)
    return messages


def schema_errors(
    document: dict[str, Any], name: str, instance: Any, *, under: str = "components/schemas"
) -> list[str]:
    """Where `instance` breaks the document's schema `under`/`name`, if anywhere."""
    validator = jsonschema_rs.Draft202012Validator({**document, "$ref": f"#/{under}/{name}"})
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(instance)]


def routes_of(add: Callable[[web.Application], object]) -> set[tuple[str, str]]:
    """(METHOD, path) of what `add` registers, outside production (where the development
    routes exist too)."""
    app = web.Application()
    app[SETTINGS] = Settings()
    add(app)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def page_routes() -> set[tuple[str, str]]:
    """The browser pages' routes: the dashboard, the docs and their files."""
    return routes_of(lambda app: app.router.add_routes(ui_routes()))


def api_routes() -> set[tuple[str, str]]:
    """Every route but the browser pages'."""
    return routes_of(setup_routes) - page_routes()


class CountingVenue:
    """A venue that counts the calls it gets (each one may carry many asks), passing them
    on to `venue`."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self.name = venue.name
        self.calls = 0

    async def quotes(self, asks: Sequence[Ask]) -> list[Quote | None]:
        self.calls += 1
        return await self._venue.quotes(asks)
