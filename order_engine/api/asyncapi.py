"""GET /asyncapi.json: the AsyncAPI 3.0 description of the three WebSockets and their
messages, on the schemas of the OpenAPI document (one generator, so they agree)."""

from __future__ import annotations

import functools

from aiohttp import WSCloseCode, web

from order_engine.api import openapi
from order_engine.api.appkeys import SETTINGS
from order_engine.api.openapi import Schema
from order_engine.api.ws import (
    CLOSE_BAD_REQUEST,
    CLOSE_CONFLICT,
    CLOSE_NOT_FOUND,
    CLOSE_RATE_LIMITED,
)
from order_engine.config import Settings

# Every close code a socket of the server ends with, and why.
CLOSE_CODES: dict[int, str] = {
    WSCloseCode.OK: "the order reached a terminal status, or the wallet socket's client left",
    WSCloseCode.GOING_AWAY: "the server is shutting down: reconnect (with since=) elsewhere",
    WSCloseCode.TRY_AGAIN_LATER: "the client fell too far behind, or a dependency is down: "
    "reconnect",
    CLOSE_BAD_REQUEST: "after one error message: a malformed id, wallet, since or order body",
    CLOSE_NOT_FOUND: "after one error message: no such order",
    CLOSE_RATE_LIMITED: "after one error message: the execute socket's order was rate limited",
    CLOSE_CONFLICT: "after one error message: the execute socket's clientOrderId is taken",
    WSCloseCode.INTERNAL_ERROR: "after one error message: an unexpected server error",
    WSCloseCode.MESSAGE_TOO_BIG: "a message over MAX_BODY_BYTES (the protocol's own answer)",
}


def _message(name: str, summary: str, schema: Schema) -> Schema:
    return {"name": name, "summary": summary, "contentType": "application/json", "payload": schema}


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/{kind}/{name}"}


_MESSAGES: dict[str, Schema] = {
    "status": _message(
        "status",
        "A status event of an order; `seq` counts its events from 1 with no gaps",
        {"$ref": "#/components/schemas/StatusMessage"},
    ),
    "accepted": _message(
        "accepted",
        "The execute socket's answer to its order body",
        {
            "type": "object",
            "required": ["type", "order"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "accepted"},
                "order": {"$ref": "#/components/schemas/Order"},
            },
        },
    ),
    "error": _message(
        "error",
        "Why the socket is about to close (4400, 4404, 4429, 1013); the fields of an HTTP error",
        {
            "type": "object",
            "required": ["type", "code", "message"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "error"},
                **openapi.ERROR_FIELDS,
            },
        },
    ),
    "price": _message(
        "price",
        "While a limit or sniper order rests: its pair's best price now, at most once a "
        "second and only when it changed. Not an event: no seq, not stored, not replayed",
        {
            "type": "object",
            "required": ["type", "orderId", "price", "timestamp"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "price"},
                "orderId": {"$ref": "#/components/schemas/StatusMessage/properties/orderId"},
                "price": {
                    "$ref": "#/components/schemas/Quote/properties/price",
                },
                "timestamp": {"$ref": "#/components/schemas/StatusMessage/properties/timestamp"},
            },
        },
    ),
    "orderBody": _message(
        "orderBody",
        "The execute socket's first message, from the client: an order body",
        {"$ref": "#/components/schemas/OrderBody"},
    ),
}


def _channel(address: str, description: str, messages: list[str], **extra: Schema) -> Schema:
    return {
        "address": address,
        "description": description,
        "messages": {name: _ref("components/messages", name) for name in messages},
        **extra,
    }


_API_KEY_QUERY = {
    "type": "string",
    "description": "the API key, when the server has API_KEYS (a browser cannot set "
    "X-API-Key on a WebSocket)",
}

_CHANNELS: dict[str, Schema] = {
    "order": _channel(
        "/ws/orders/{orderId}",
        "One order: its events after `since` replayed from the database in seq order, then "
        "live ones; closes 1000 after the terminal one. A resting order's socket also gets "
        "price messages.",
        ["status", "price", "error"],
        parameters={"orderId": {"description": "the order's id (a UUID)"}},
        bindings={
            "ws": {
                "query": {
                    "type": "object",
                    "properties": {
                        "since": {"type": "integer", "minimum": 0, "default": 0},
                        "apiKey": _API_KEY_QUERY,
                    },
                }
            }
        },
    ),
    "wallet": _channel(
        "/ws/orders",
        "Every order of one wallet: live status messages only (no replay), until the client "
        "leaves. Read GET /api/orders/user/{wallet} to catch up after a reconnect.",
        ["status", "error"],
        bindings={
            "ws": {
                "query": {
                    "type": "object",
                    "required": ["wallet"],
                    "properties": {
                        "wallet": {"$ref": "#/components/schemas/OrderBody/properties/userWallet"},
                        "apiKey": _API_KEY_QUERY,
                    },
                }
            }
        },
    ),
    "execute": _channel(
        "/api/orders/execute",
        "The client sends one order body; the server answers accepted, then the order's "
        "status messages (and price messages while a limit or sniper order rests), and "
        "closes 1000 after the terminal one.",
        ["orderBody", "accepted", "status", "price", "error"],
        bindings={"ws": {"query": {"type": "object", "properties": {"apiKey": _API_KEY_QUERY}}}},
    ),
}


def _operation(action: str, channel: str, messages: list[str], summary: str) -> Schema:
    return {
        "action": action,
        "channel": _ref("channels", channel),
        "summary": summary,
        "messages": [_ref(f"channels/{channel}/messages", m) for m in messages],
    }


@functools.lru_cache(maxsize=8)
def document(settings: Settings) -> Schema:
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "order-engine WebSockets",
            "version": "1",
            "description": "Status messages of orders as they happen. The server pings every "
            "socket (heartbeat) and closes one whose client falls too far behind. Close "
            "codes: " + "; ".join(f"{code} {why}" for code, why in CLOSE_CODES.items()) + ".",
        },
        "channels": _CHANNELS,
        "operations": {
            "followOrder": _operation(
                "receive", "order", ["status", "price", "error"], "Follow one order to its end"
            ),
            "followWallet": _operation(
                "receive", "wallet", ["status", "error"], "Follow every order of a wallet"
            ),
            "sendOrder": _operation(
                "send", "execute", ["orderBody"], "Place an order on the execute socket"
            ),
            "followExecutedOrder": _operation(
                "receive",
                "execute",
                ["accepted", "status", "price", "error"],
                "The placed order, then its status messages",
            ),
        },
        "components": {
            "messages": _MESSAGES,
            "schemas": openapi.components(settings),
        },
        "x-close-codes": {str(int(code)): why for code, why in CLOSE_CODES.items()},
    }


async def asyncapi(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[SETTINGS]))
