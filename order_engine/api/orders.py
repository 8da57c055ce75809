"""HTTP handlers for orders."""

from __future__ import annotations

from aiohttp import web

from order_engine.api.appkeys import ORDERS, SETTINGS
from order_engine.api.ratelimit import ratelimit_headers
from order_engine.api.schemas import (
    parse_client_order_id,
    parse_int_param,
    parse_order,
    parse_order_id,
    parse_status,
    parse_wallet,
)
from order_engine.api.serialize import (
    decode_cursor,
    encode_cursor,
    event_message,
    json_body,
    order_json,
)
from order_engine.api.strict_json import parse_json
from order_engine.domain.orders import NewOrder

MAX_PAGE = 200
DEFAULT_PAGE = 50


async def _read_order(request: web.Request) -> NewOrder:
    payload = parse_json(await request.read())
    return parse_order(payload, max_input_amount=request.app[SETTINGS].max_input_amount)


async def create_order(request: web.Request) -> web.Response:
    placed = await request.app[ORDERS].place(await _read_order(request), execute=False)
    return json_body(order_json(placed.order), status=201, headers=ratelimit_headers(placed.quotas))


async def execute_new_order(request: web.Request) -> web.Response:
    placed = await request.app[ORDERS].place(await _read_order(request), execute=True)
    body = order_json(placed.order)
    body["wsUrl"] = f"/ws/orders/{body['orderId']}"
    return json_body(body, status=202, headers=ratelimit_headers(placed.quotas))


async def execute_order(request: web.Request) -> web.Response:
    order_id = parse_order_id(request.match_info["orderId"])
    order = await request.app[ORDERS].execute(order_id)
    return json_body(order_json(order), status=202)


async def cancel_order(request: web.Request) -> web.Response:
    order_id = parse_order_id(request.match_info["orderId"])
    order = await request.app[ORDERS].cancel(order_id)
    return json_body(order_json(order))


async def get_order(request: web.Request) -> web.Response:
    order_id = parse_order_id(request.match_info["orderId"])
    return json_body(order_json(await request.app[ORDERS].get(order_id)))


async def get_events(request: web.Request) -> web.Response:
    order_id = parse_order_id(request.match_info["orderId"])
    events = await request.app[ORDERS].events(order_id)
    return json_body({"events": [event_message(e) for e in events]})


async def list_wallet_orders(request: web.Request) -> web.Response:
    wallet = parse_wallet(request.match_info["wallet"])
    limit = parse_int_param(
        request.query.get("limit"), "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE
    )
    status = parse_status(request.query.get("status"))
    client_order_id = parse_client_order_id(request.query.get("clientOrderId"))
    raw_cursor = request.query.get("cursor")
    after = decode_cursor(raw_cursor) if raw_cursor else None
    orders, next_cursor = await request.app[ORDERS].wallet_orders(
        wallet, limit=limit, after=after, status=status, client_order_id=client_order_id
    )
    return json_body(
        {
            "orders": [order_json(o) for o in orders],
            "nextCursor": encode_cursor(next_cursor) if next_cursor else None,
        }
    )
