"""Domain objects to the JSON the API promises: camelCase, decimals as strings, UTC ms."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import cattrs
import orjson
from aiohttp import web
from cattrs.gen import make_dict_unstructure_fn, override

from order_engine.api.errors import ApiError, FieldError, validation_error
from order_engine.api.schemas import camel
from order_engine.api.strict_json import parse_json
from order_engine.domain.events import (
    Accepted,
    Built,
    Cancelled,
    Confirmed,
    EventData,
    Expired,
    Failed,
    Legacy,
    OrderEvent,
    RetryScheduled,
    Routed,
    Submitted,
    Waiting,
)
from order_engine.domain.orders import Order
from order_engine.domain.routes import Quote, Route
from order_engine.formats import decimal_str, timestamp_str
from order_engine.routing.tokens import NATIVE_SOL
from order_engine.store.orders import WalletCursor

# What the engine keeps to rebuild its transaction is not part of the order object.
_INTERNAL = frozenset({"route", "tx_slot"})
# Each attribute of Order and its key in the JSON (the OpenAPI document reads it too).
ORDER_KEYS: dict[str, str] = {
    a.name: "orderId" if a.name == "id" else camel(a.name)
    for a in attrs.fields(Order)
    if a.name not in _INTERNAL
}
_renames: dict[str, Any] = {name: override(rename=key) for name, key in ORDER_KEYS.items()}
_renames |= {name: override(omit=True) for name in _INTERNAL}
_converter = cattrs.Converter()
_converter.register_unstructure_hook(Decimal, decimal_str)
_converter.register_unstructure_hook(datetime, timestamp_str)
_converter.register_unstructure_hook(uuid.UUID, str)
_converter.register_unstructure_hook(
    Order,
    make_dict_unstructure_fn(
        Order,
        _converter,
        **_renames,
    ),
)
for _payload in (
    Accepted,
    Built,
    Submitted,
    Confirmed,
    Failed,
    RetryScheduled,
    Cancelled,
    Waiting,
    Expired,
):
    _payload_renames: dict[str, Any] = {
        a.name: override(rename=camel(a.name)) for a in attrs.fields(_payload)
    }
    _converter.register_unstructure_hook(
        _payload, make_dict_unstructure_fn(_payload, _converter, **_payload_renames)
    )


def order_json(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = _converter.unstructure(order)
    return body


def quote_json(quote: Quote) -> dict[str, Any]:
    return {
        "dex": quote.dex,
        "amountOut": decimal_str(quote.amount_out),
        "price": decimal_str(quote.price),
        "feeBps": quote.fee_bps,
        "priceImpactBps": decimal_str(quote.price_impact_bps),
        "fee": decimal_str(quote.fee),
    }


def route_json(route: Route) -> dict[str, Any]:
    """API.md's route, with its kind and the native SOL wrapped before and unwrapped after."""
    first, last = route.legs[0], route.legs[-1]
    return {
        "kind": route.kind,
        "amountOut": decimal_str(route.amount_out),
        "legs": [
            {
                "dex": q.dex,
                "inputToken": q.input_token,
                "outputToken": q.output_token,
                "inputAmount": decimal_str(q.input_amount),
                "amountOut": decimal_str(q.amount_out),
                "feeBps": q.fee_bps,
                "priceImpactBps": decimal_str(q.price_impact_bps),
            }
            for q in route.legs
        ],
        "wrapSol": decimal_str(route.input_amount) if first.input_token == NATIVE_SOL else None,
        "unwrapSol": decimal_str(route.amount_out) if last.output_token == NATIVE_SOL else None,
    }


def _routed(data: Routed) -> dict[str, Any]:
    body: dict[str, Any] = {
        "quotes": [quote_json(q) for q in data.quotes],
        "dex": data.route.dex,
        "route": route_json(data.route),
    }
    if data.attempt is not None:
        body["attempt"] = data.attempt
    if data.min_amount_out is not None:
        body["minAmountOut"] = decimal_str(data.min_amount_out)
    if data.tx_hash is not None:
        body["txHash"] = data.tx_hash
    return body


def event_data_json(data: EventData) -> dict[str, Any]:
    """An event's `data` as API.md gives it for its status."""
    match data:
        case Routed():
            return _routed(data)
        case Legacy():
            return data.api
        case Waiting():
            # The keys of its trigger: a limit's, a sniper's, or both.
            waiting: dict[str, Any] = _converter.unstructure(data)
            return {key: value for key, value in waiting.items() if value is not None}
        case _:
            body: dict[str, Any] = _converter.unstructure(data)
            return body


def event_message(event: OrderEvent) -> dict[str, Any]:
    """A status event as every socket sends it and /events lists it; `clientOrderId`
    only for an order that has one."""
    message = {
        "type": "status",
        "orderId": str(event.order_id),
        "status": event.status.value,
        "seq": event.seq,
        "timestamp": timestamp_str(event.timestamp),
        "data": event_data_json(event.data),
    }
    if event.client_order_id is not None:
        message["clientOrderId"] = event.client_order_id
    return message


def price_message(order_id: uuid.UUID, price: Decimal, at: datetime) -> str:
    """The price of a resting order's pair, as its sockets get it: no seq, not stored."""
    return orjson.dumps(
        {
            "type": "price",
            "orderId": str(order_id),
            "price": decimal_str(price),
            "timestamp": timestamp_str(at),
        }
    ).decode()


def encode_event(event: OrderEvent) -> str:
    """The status message as a socket sends it: encoded once, for every subscriber."""
    return orjson.dumps(event_message(event)).decode()


def json_body(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response, encoded by orjson."""
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def encode_cursor(cursor: WalletCursor) -> str:
    raw = json.dumps([cursor.created_at.isoformat(), str(cursor.order_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# What encode_cursor makes is about 100 characters of base64url.
MAX_CURSOR_CHARS = 200
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def decode_cursor(text: str) -> WalletCursor:
    """The opaque cursor back to its keyset; a validation_error on `cursor` if it is not
    one. Its time must be in UTC, as encode_cursor writes it, so that it is one Postgres
    can take whatever the year."""
    refused = validation_error([FieldError("cursor", "is not a cursor this API issued")])
    if len(text) > MAX_CURSOR_CHARS or not _BASE64URL.fullmatch(text):
        raise refused
    try:
        padded = text + "=" * (-len(text) % 4)
        created_at, order_id = parse_json(base64.urlsafe_b64decode(padded), field="cursor")
        cursor = WalletCursor(datetime.fromisoformat(str(created_at)), uuid.UUID(str(order_id)))
    except (ApiError, ValueError, TypeError, binascii.Error):
        raise refused from None
    if cursor.created_at.utcoffset() != timedelta(0):
        raise refused
    return cursor
