"""Domain objects to the JSON the API promises: camelCase, decimals as strings, UTC ms."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from order_engine.api.errors import FieldError, validation_error
from order_engine.api.schemas import camel
from order_engine.domain.orders import Order, OrderEvent
from order_engine.formats import decimal_str, timestamp_str
from order_engine.store.orders import WalletCursor

_renames: dict[str, Any] = {
    a.name: override(rename="orderId" if a.name == "id" else camel(a.name))
    for a in attrs.fields(Order)
}
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


def order_json(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = _converter.unstructure(order)
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
        "data": event.data,
    }
    if event.client_order_id is not None:
        message["clientOrderId"] = event.client_order_id
    return message


def encode_cursor(cursor: WalletCursor) -> str:
    raw = json.dumps([cursor.created_at.isoformat(), str(cursor.order_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> WalletCursor:
    """The opaque cursor back to its keyset; a validation_error on `cursor` if it is not one."""
    try:
        padded = text + "=" * (-len(text) % 4)
        created_at, order_id = json.loads(base64.urlsafe_b64decode(padded))
        cursor = WalletCursor(datetime.fromisoformat(created_at), uuid.UUID(order_id))
    except (ValueError, TypeError, binascii.Error):
        raise validation_error([FieldError("cursor", "is not a cursor this API issued")]) from None
    if cursor.created_at.tzinfo is None:
        raise validation_error([FieldError("cursor", "is not a cursor this API issued")])
    return cursor
