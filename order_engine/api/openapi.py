"""GET /openapi.json: the OpenAPI 3.1 description of every HTTP route.

Generated, so that it cannot drift from the server: request and response objects come
from the attrs classes the validators and serialisers use (schemas.OrderBody,
domain.orders.Order, ...), bounds and enums from the constants and enums the code checks
against, and every object the server closes is closed here (`additionalProperties:
false`), so that a test or schemathesis refuses a property nobody documented. Extending
it: a new field of one of those classes appears by itself (its type decides its schema,
`_field_rules` its bounds); a new route gets an entry in `_paths`.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
import base58
from aiohttp import web

from order_engine.api import orders
from order_engine.api.appkeys import SETTINGS
from order_engine.api.auth import HEADER as API_KEY_HEADER
from order_engine.api.auth import PROTECTED_PREFIXES
from order_engine.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from order_engine.api.idempotency import MAX_KEY_LENGTH
from order_engine.api.schemas import (
    CLIENT_ORDER_ID_RE,
    LIMIT_PRICE_DECIMALS,
    MAX_LIMIT_PRICE,
    MAX_POOL_RESERVE,
    MAX_SLIPPAGE_BPS,
    UUID_PATTERN,
    OrderBody,
    PoolBody,
    camel,
)
from order_engine.api.serialize import ORDER_KEYS
from order_engine.chain.market import DEXES
from order_engine.config import Settings
from order_engine.domain.orders import FailureCode, Order, OrderStatus, OrderType
from order_engine.domain.routes import DIRECT, MULTI_LEG_DEXES, SPLIT, TWO_HOP
from order_engine.metrics import RECENT_WINDOW_S
from order_engine.routing.tokens import TOKENS

Schema = dict[str, Any]

# What the server writes: plain notation, no exponent (formats.decimal_str).
DECIMAL_OUT_PATTERN = r"^-?\d+(\.\d+)?$"
_DECIMAL = {"type": "string", "pattern": DECIMAL_OUT_PATTERN, "examples": ["10.5"]}
_TIMESTAMP = {"type": "string", "format": "date-time", "examples": ["2026-11-24T10:15:30.123Z"]}
_UUID = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}
_CLIENT_ORDER_ID = {
    "type": "string",
    "pattern": CLIENT_ORDER_ID_RE.pattern,
    "description": "the client's own name for the order, unique per wallet",
}
_TOKEN = {"type": "string", "enum": list(TOKENS), "description": "a symbol of GET /api/tokens"}
_DEX = {"type": "string", "enum": list(DEXES)}
# An order's `dex`: one DEX, or what a route over several legs is called (API.md).
_ORDER_DEX = {"type": "string", "enum": [*DEXES, *sorted(MULTI_LEG_DEXES)]}
_WALLET = {
    "type": "string",
    # base58 of 32 bytes is 32 to 44 characters of the alphabet.
    "pattern": f"^[{base58.BITCOIN_ALPHABET.decode()}]{{32,44}}$",
    "description": "a Solana address: base58 that decodes to 32 bytes",
    "examples": ["9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"],
}
MAX_TOKEN_DECIMALS = max(t.decimals for t in TOKENS.values())


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def _closed(properties: Mapping[str, Schema], required: list[str] | None = None) -> Schema:
    """An object with exactly these properties, every one present unless `required`
    names fewer."""
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
        "properties": dict(properties),
    }


def _number_in(description: str, **bounds: Any) -> Schema:
    """A number as a request may give it: a JSON number or a decimal string (API.md)."""
    return {
        "description": description,
        "oneOf": [
            {"type": "number", **bounds},
            {"type": "string", "pattern": DECIMAL_OUT_PATTERN, "examples": ["10.5"]},
        ],
    }


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _schema_of(hint: Any, *, request: bool) -> Schema:
    """The schema of an attribute's type: as a request gives it or as a response has it."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _nullable(_schema_of(inner, request=request))
    if hint is Decimal:
        return _number_in("a number or a decimal string") if request else _DECIMAL
    if hint is datetime:
        return _TIMESTAMP
    if hint is uuid.UUID:
        return _UUID
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [m.value for m in hint]}
    simple = {str: "string", int: "integer", bool: "boolean"}
    if hint in simple:
        return {"type": simple[hint]}
    raise TypeError(f"no schema for {hint!r}: add it to _schema_of")


# Bounds and enums of attributes, by class and attribute name, from the validators' own
# constants. An attribute not named here gets the schema of its type alone.
def _field_rules(settings: Settings) -> dict[type, dict[str, Schema]]:
    amount = _number_in(
        f"> 0, at most {settings.max_input_amount} (MAX_INPUT_AMOUNT) and at most the input "
        "token's decimals",
        exclusiveMinimum=0,
        maximum=_json_number(settings.max_input_amount),
    )
    return {
        OrderBody: {
            "user_wallet": _WALLET,
            "input_token": _TOKEN,
            "output_token": {
                **_TOKEN,
                "description": "a symbol of GET /api/tokens, not inputToken",
            },
            "input_amount": amount,
            "type": {
                "type": "string",
                "enum": [t.value for t in OrderType],
                "description": "market runs at once; limit rests until a route pays "
                "limitPrice; sniper rests until a pool of outputToken launches",
            },
            "slippage_bps": {"type": "integer", "minimum": 0, "maximum": MAX_SLIPPAGE_BPS},
            "limit_price": _nullable(
                _number_in(
                    "required for limit orders, optional for sniper orders: the worst price, "
                    f"outputToken per inputToken; at most {MAX_LIMIT_PRICE} and "
                    f"{LIMIT_PRICE_DECIMALS} decimals",
                    exclusiveMinimum=0,
                    maximum=_json_number(MAX_LIMIT_PRICE),
                )
            ),
            "expires_at": _nullable(
                {
                    "type": "string",
                    "format": "date-time",
                    "description": "limit and sniper orders only; in the future; default 24 h",
                }
            ),
            "client_order_id": _nullable(_CLIENT_ORDER_ID),
        },
        PoolBody: {
            "dex": _DEX,
            "token_a": _TOKEN,
            "token_b": {**_TOKEN, "description": "a symbol of GET /api/tokens, not tokenA"},
            "reserve_a": _number_in(
                f"at least one base unit of tokenA, at most {MAX_POOL_RESERVE}", exclusiveMinimum=0
            ),
            "reserve_b": _number_in(
                f"at least one base unit of tokenB, at most {MAX_POOL_RESERVE}", exclusiveMinimum=0
            ),
        },
        Order: {
            "user_wallet": _WALLET,
            "input_token": _TOKEN,
            "output_token": _TOKEN,
            "dex": _nullable(_ORDER_DEX),
            "failure_code": _nullable({"type": "string", "enum": [c.value for c in FailureCode]}),
            "slippage_bps": {"type": "integer", "minimum": 0, "maximum": MAX_SLIPPAGE_BPS},
            "attempts": {"type": "integer", "minimum": 0},
        },
    }


def _request_schema(cls: type, rules: Mapping[str, Schema]) -> Schema:
    """A request body from its attrs class: camelCase keys, required where the attribute
    has no default, unknown keys refused (the converter forbids extra keys)."""
    hints = typing.get_type_hints(cls)
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        schema = dict(rules.get(field.name) or _schema_of(hints[field.name], request=True))
        if field.default is attrs.NOTHING:
            required.append(camel(field.name))
        elif field.default is not None:
            schema["default"] = field.default
        properties[camel(field.name)] = schema
    return _closed(properties, required)


def _order_schema(rules: Mapping[str, Schema]) -> Schema:
    """The order object as serialize.order_json writes it: every attribute, null where it
    does not apply yet."""
    hints = typing.get_type_hints(Order)
    properties = {
        key: rules.get(name) or _schema_of(hints[name], request=False)
        for name, key in ORDER_KEYS.items()
    }
    return _closed(properties)


# Every key a status event's `data` may carry (engine/execution.py, api/orders_service.py),
# and for which statuses; docs/api.md explains them.
EVENT_DATA: dict[str, Schema] = {
    "quotes": {"type": "array", "items": _ref("Quote"), "description": "routing"},
    "dex": {**_ORDER_DEX, "description": "routing, building"},
    "route": {**_ref("Route"), "description": "routing"},
    "minAmountOut": {**_DECIMAL, "description": "building"},
    "txHash": {"type": "string", "description": "submitted, confirmed"},
    "amountOut": {**_DECIMAL, "description": "confirmed"},
    "executedPrice": {**_DECIMAL, "description": "confirmed"},
    "attempt": {"type": "integer", "minimum": 0, "description": "failed, and any retry"},
    "code": {
        "type": "string",
        "enum": [c.value for c in FailureCode],
        "description": "failed, and the failure a retry follows",
    },
    "reason": {"type": "string", "description": "failed, cancelled, and a retry"},
    "limitPrice": {**_DECIMAL, "description": "waiting: the order's limit"},
    "price": {
        **_DECIMAL,
        "description": "waiting: the pair's best price when the order began resting",
    },
    "token": {**_TOKEN, "description": "waiting: the token a sniper order waits for a pool of"},
    "slot": {
        "type": "integer",
        "minimum": 0,
        "description": "waiting: the chain slot it rests from; a sniper fires at a launch after",
    },
    "expiresAt": {**_TIMESTAMP, "description": "waiting, expired: the order's deadline"},
    "retryInMs": {"type": "integer", "minimum": 0, "description": "a retry: when it is due"},
}


# The fields of an error, in an HTTP error's `error` and in a socket's error message.
ERROR_FIELDS: dict[str, Schema] = {
    "code": {"type": "string", "examples": ["validation_error"]},
    "message": {"type": "string"},
    "orderId": {
        **_UUID,
        "description": "duplicate_client_order_id: the order that has that clientOrderId",
    },
    "details": {
        "type": "array",
        "description": "one per wrong field, for validation_error",
        "items": _closed({"field": {"type": "string"}, "message": {"type": "string"}}),
    },
}


def components(settings: Settings) -> dict[str, Schema]:
    """The schemas both documents share (the AsyncAPI one refers to them too)."""
    rules = _field_rules(settings)
    order = _order_schema(rules[Order])
    leg = _closed(
        {
            "dex": _DEX,
            "inputToken": _TOKEN,
            "outputToken": _TOKEN,
            "inputAmount": _DECIMAL,
            "amountOut": _DECIMAL,
            "feeBps": {"type": "integer", "minimum": 0},
            "priceImpactBps": _DECIMAL,
        }
    )
    return {
        "Error": _closed({"error": _closed(ERROR_FIELDS, required=["code", "message"])}),
        "OrderBody": _request_schema(OrderBody, rules[OrderBody]),
        "PoolBody": _request_schema(PoolBody, rules[PoolBody]),
        "Order": order,
        "AcceptedOrder": _closed(
            {
                **order["properties"],
                "wsUrl": {"type": "string", "examples": ["/ws/orders/3f0c…"]},
            }
        ),
        "StatusMessage": _closed(
            {
                "type": {"const": "status"},
                "orderId": _UUID,
                "status": {"type": "string", "enum": [s.value for s in OrderStatus]},
                "seq": {"type": "integer", "minimum": 1},
                "timestamp": _TIMESTAMP,
                "data": _closed(EVENT_DATA, required=[]),
                "clientOrderId": {**_CLIENT_ORDER_ID, "description": "only if the order has one"},
            },
            required=["type", "orderId", "status", "seq", "timestamp", "data"],
        ),
        "Quote": _closed(
            {
                "dex": _DEX,
                "amountOut": _DECIMAL,
                "price": {**_DECIMAL, "description": "outputToken per inputToken"},
                "feeBps": {"type": "integer", "minimum": 0},
                "priceImpactBps": _DECIMAL,
                "fee": {**_DECIMAL, "description": "the fee in inputToken units"},
            }
        ),
        "Route": _closed(
            {
                "kind": {"type": "string", "enum": [DIRECT, SPLIT, TWO_HOP]},
                "amountOut": _DECIMAL,
                "legs": {
                    "type": "array",
                    "minItems": 1,
                    "items": leg,
                    "description": "one for a direct route; one per DEX for a split; "
                    "consecutive hops for a two-hop path",
                },
                "wrapSol": {
                    **_nullable(_DECIMAL),
                    "description": "native SOL wrapped before the swap; null unless "
                    "inputToken is SOL",
                },
                "unwrapSol": {
                    **_nullable(_DECIMAL),
                    "description": "native SOL unwrapped after the swap; null unless "
                    "outputToken is SOL",
                },
            }
        ),
        "Health": {
            "type": "object",
            "required": [
                "status",
                "postgres",
                "redis",
                "chain",
                "chainSlot",
                "queueDepth",
                "inFlight",
                "websockets",
            ],
            "properties": {
                "status": {"enum": ["ok", "degraded"]},
                "postgres": {"enum": ["ok", "down"]},
                "redis": {"enum": ["ok", "down"]},
                "chain": {
                    "enum": ["ok", "stalled"],
                    "description": "stalled: no slot of the shared chain reached this process "
                    "lately",
                },
                "chainSlot": {
                    "type": "integer",
                    "description": "the slot this process's view of the chain is at",
                },
                "queueDepth": {
                    "type": ["integer", "null"],
                    "description": "queue entries not yet acknowledged; null while Redis is down",
                },
                "inFlight": {"type": "integer", "description": "orders this process runs now"},
                "websockets": {"type": "integer", "description": "sockets open on this process"},
            },
            # Components are the one open part: a dependency checked later is one more.
            "additionalProperties": {"enum": ["ok", "down", "stalled"]},
        },
        "Stats": _closed(
            {
                "windowS": {"type": "integer", "const": RECENT_WINDOW_S},
                "seconds": {
                    "type": "array",
                    "description": "each whole second of the window, oldest first",
                    "items": _closed(
                        {
                            "at": _TIMESTAMP,
                            "accepted": {"type": "integer", "minimum": 0},
                            "confirmed": {"type": "integer", "minimum": 0},
                            "failed": {"type": "integer", "minimum": 0},
                            "latencyP50Ms": {"type": ["number", "null"]},
                            "latencyP90Ms": {"type": ["number", "null"]},
                        }
                    ),
                },
            }
        ),
        "Token": _closed(
            {
                "symbol": _TOKEN,
                "mint": {"type": "string", "pattern": _WALLET["pattern"]},
                "decimals": {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_DECIMALS},
            }
        ),
        "Pool": _closed(
            {
                "dex": _DEX,
                "tokenA": _TOKEN,
                "tokenB": _TOKEN,
                "reserveA": _DECIMAL,
                "reserveB": _DECIMAL,
                "price": {**_DECIMAL, "description": "tokenB per tokenA"},
                "tradingFromSlot": {
                    "type": ["integer", "null"],
                    "description": "the first slot it trades in on the process that answered; "
                    "null if that took longer than 20 slots",
                },
            }
        ),
    }


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# Each error status and the codes it carries; a test checks these against every code the
# handlers raise.
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: ("invalid_json", "validation_error", "invalid_order_id"),
    401: ("unauthorized",),
    404: ("order_not_found", "not_found"),
    405: ("method_not_allowed",),
    408: ("request_timeout",),
    409: ("status_conflict", "idempotency_in_progress", "pool_exists", "duplicate_client_order_id"),
    413: ("payload_too_large",),
    415: ("unsupported_media_type",),
    422: ("idempotency_key_reused",),
    429: ("rate_limited",),
    500: ("internal_error",),
    503: ("unavailable",),
}
_ERROR_NOTES = {
    401: f"API_KEYS is set and the request has no valid {API_KEY_HEADER}",
    429: "has Retry-After",
    503: "Postgres, Redis or every DEX unreachable; has Retry-After",
}


def _errors(
    *statuses: int, codes: Mapping[int, tuple[str, ...]] | None = None
) -> dict[str, Schema]:
    """Error responses of an operation; `codes` narrows a status to the codes it can meet."""
    narrowed = codes or {}
    return {
        str(s): _json(
            _ref("Error"),
            " or ".join(narrowed.get(s, ERROR_CODES[s]))
            + (f": {_ERROR_NOTES[s]}" if s in _ERROR_NOTES else ""),
        )
        for s in statuses
    }


_ORDER_ID = {
    "name": "orderId",
    "in": "path",
    "required": True,
    "description": "a UUID; anything else is 400 invalid_order_id",
    "schema": _UUID,
}
_IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "the same key and body within 24 h replays the first response",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}
_ORDER_BODY = {"required": True, "content": {"application/json": {"schema": _ref("OrderBody")}}}
_ORDER_409 = {409: ("status_conflict", "idempotency_in_progress")}
_SUBMIT_409 = {409: ("idempotency_in_progress", "duplicate_client_order_id")}
_RATELIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": 'each configured submission limit, e.g. "wallet";q=60;w=60 '
        "(IETF RateLimit headers); absent when none is configured",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'what is left of each limit, e.g. "wallet";r=12;t=41 (remaining, '
        "seconds until the window ends); absent when none is configured",
        "schema": {"type": "string"},
    },
}


def _limited(responses: dict[str, Schema]) -> dict[str, Schema]:
    """The order POSTs' answers that went through the submission limits carry them."""
    for status in ("201", "202", "429"):
        if status in responses:
            responses[status] = {**responses[status], "headers": _RATELIMIT_HEADERS}
    return responses


_READINESS = {
    "200": _json(_ref("Health"), "every check passes"),
    "503": _json(_ref("Health"), "a check failed (named down or stalled); has Retry-After"),
}
_SOCKET = {
    "101": {"description": "switched to a WebSocket; its messages are in /asyncapi.json"},
    **_errors(400, 429, 503),
}


def _document(operation_id: str, summary: str) -> Schema:
    return {
        "get": {
            "summary": summary,
            "operationId": operation_id,
            "responses": {"200": _json({"type": "object"}, summary)},
        }
    }


def _order_op(summary: str, operation_id: str, ok: tuple[str, Schema], *errors: int) -> Schema:
    """An operation on one order, by its id."""
    status, schema = ok
    return {
        "summary": summary,
        "operationId": operation_id,
        "parameters": [_ORDER_ID],
        "responses": {
            status: _json(schema, summary),
            **_errors(400, 404, *errors, 503, codes=_ORDER_409),
        },
    }


def _paths() -> dict[str, Schema]:
    submit = (400, 408, 409, 413, 415, 422, 429, 503)
    return {
        "/api/orders": {
            "post": {
                "summary": "Persist a pending order; nothing runs until it is executed",
                "operationId": "createOrder",
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _ORDER_BODY,
                "responses": _limited(
                    {
                        "201": _json(_ref("Order"), "the pending order"),
                        **_errors(*submit, codes=_SUBMIT_409),
                    }
                ),
            }
        },
        "/api/orders/execute": {
            "post": {
                "summary": "Persist an order and queue it for execution",
                "operationId": "executeNewOrder",
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _ORDER_BODY,
                "responses": _limited(
                    {
                        "202": _json(_ref("AcceptedOrder"), "the queued order and its socket"),
                        **_errors(*submit, codes=_SUBMIT_409),
                    }
                ),
            },
            "get": {
                "summary": "The execute socket (GET with Upgrade: websocket)",
                "description": "First message: an order body. Then an accepted message and "
                "the order's status messages; see /asyncapi.json.",
                "operationId": "executeSocket",
                "responses": _SOCKET,
            },
        },
        "/api/orders/{orderId}/execute": {
            "post": _order_op(
                "Queue an existing pending order",
                "executeOrder",
                ("202", _ref("Order")),
                408,
                409,
                413,
                415,
            )
        },
        "/api/orders/{orderId}/cancel": {
            "post": _order_op(
                "Cancel a pending or waiting order",
                "cancelOrder",
                ("200", _ref("Order")),
                408,
                409,
                413,
                415,
            )
        },
        "/api/orders/{orderId}": {
            "get": _order_op("The order's current state", "getOrder", ("200", _ref("Order")))
        },
        "/api/orders/{orderId}/events": {
            "get": _order_op(
                "The order's whole status history, oldest first, as the sockets send it",
                "getOrderEvents",
                ("200", _closed({"events": {"type": "array", "items": _ref("StatusMessage")}})),
            )
        },
        "/api/orders/user/{wallet}": {
            "get": {
                "summary": "A wallet's orders, newest first, by keyset pages",
                "operationId": "listWalletOrders",
                "parameters": [
                    {"name": "wallet", "in": "path", "required": True, "schema": _WALLET},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": orders.MAX_PAGE,
                            "default": orders.DEFAULT_PAGE,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "nextCursor of the previous page",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": [s.value for s in OrderStatus]},
                    },
                    {
                        "name": "clientOrderId",
                        "in": "query",
                        "description": "only the wallet's order of this clientOrderId",
                        "schema": _CLIENT_ORDER_ID,
                    },
                ],
                "responses": {
                    "200": _json(
                        _closed(
                            {
                                "orders": {"type": "array", "items": _ref("Order")},
                                "nextCursor": {"type": ["string", "null"]},
                            }
                        ),
                        "one page; nextCursor is null on the last",
                    ),
                    **_errors(400, 503),
                },
            }
        },
        "/api/quote": {
            "get": {
                "summary": "A quote from every DEX and the best route now; no order is made",
                "operationId": "quote",
                "parameters": [
                    {"name": "inputToken", "in": "query", "required": True, "schema": _TOKEN},
                    {"name": "outputToken", "in": "query", "required": True, "schema": _TOKEN},
                    {
                        "name": "inputAmount",
                        "in": "query",
                        "required": True,
                        "description": "by the rules of the order body's inputAmount",
                        "schema": {
                            "type": "string",
                            "pattern": rf"^\d+(\.\d{{1,{MAX_TOKEN_DECIMALS}}})?$",
                            "examples": ["10"],
                        },
                    },
                ],
                "responses": {
                    "200": _json(
                        _closed(
                            {
                                "quotes": {"type": "array", "items": _ref("Quote")},
                                "best": _nullable(_ref("Route")),
                                "slot": {
                                    "type": "integer",
                                    "description": "the chain slot whose prices were quoted",
                                },
                            }
                        ),
                        "the quotes; best is null when no DEX quotes the pair",
                    ),
                    **_errors(400, 503),
                },
            }
        },
        "/api/tokens": {
            "get": {
                "summary": "Supported tokens",
                "operationId": "tokens",
                "responses": {
                    "200": _json(
                        _closed({"tokens": {"type": "array", "items": _ref("Token")}}),
                        "every token",
                    ),
                },
            }
        },
        "/api/stats": {
            "get": {
                "summary": "This process's orders a second and accept → confirmed latency, "
                "over the last minute",
                "operationId": "stats",
                "responses": {
                    "200": _json(_ref("Stats"), "one entry a second"),
                },
            }
        },
        "/ws/orders": {
            "get": {
                "summary": "Live status messages of every order of one wallet (WebSocket)",
                "operationId": "walletSocket",
                "parameters": [
                    {"name": "wallet", "in": "query", "required": True, "schema": _WALLET}
                ],
                "responses": _SOCKET,
            }
        },
        "/ws/orders/{orderId}": {
            "get": {
                "summary": "One order's status messages: replay after `since`, then live "
                "(WebSocket)",
                "operationId": "orderSocket",
                "parameters": [
                    _ORDER_ID,
                    {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": _SOCKET,
            }
        },
        "/api/dev/pools": {
            "post": {
                "summary": "Launch a pool on a simulated DEX (not in production)",
                "operationId": "launchPool",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PoolBody")}},
                },
                "responses": {
                    "201": _json(_ref("Pool"), "the new pool"),
                    **_errors(400, 408, 409, 413, 415, codes={409: ("pool_exists",)}),
                },
            }
        },
        "/livez": {
            "get": {
                "summary": "Liveness: the process answers (whatever its dependencies do)",
                "operationId": "livez",
                "responses": {
                    "200": _json(_closed({"status": {"const": "ok"}}), "the process answers")
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: every dependency answers; queue depth and work in flight",
                "operationId": "readyz",
                "responses": _READINESS,
            }
        },
        "/health": {
            "get": {
                "summary": "The same as /readyz, under the name the API has always had",
                "operationId": "health",
                "responses": _READINESS,
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of this process",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                },
            }
        },
        "/openapi.json": _document("openapi", "This document: OpenAPI 3.1 of the HTTP routes"),
        "/asyncapi.json": _document("asyncapi", "AsyncAPI 3.0 of the WebSocket messages"),
    }


# Swagger UI groups operations by tag: the first that a path starts with.
_TAGS = (
    ("/api/orders", "orders"),
    ("/ws", "sockets"),
    ("/api/quote", "market"),
    ("/api/tokens", "market"),
    ("/api/dev/", "development"),
    ("/", "operations"),
)


def _tagged(paths: dict[str, Schema]) -> dict[str, Schema]:
    for path, item in paths.items():
        tag = next(tag for prefix, tag in _TAGS if path.startswith(prefix))
        for operation in item.values():
            operation["tags"] = [tag]
    return paths


def _keyed(paths: dict[str, Schema]) -> dict[str, Schema]:
    """With API_KEYS set, every /api route and socket needs a key and may answer 401."""
    for path, item in paths.items():
        if path.startswith(PROTECTED_PREFIXES):
            for operation in item.values():
                operation["responses"].update(_errors(401))
                operation["security"] = [{}, {"apiKey": []}]
    return paths


def _order_link(operation_id: str) -> Schema:
    return {"operationId": operation_id, "parameters": {"orderId": "$response.body#/orderId"}}


_ORDER_LINKS = {
    "ExecuteOrder": _order_link("executeOrder"),
    "CancelOrder": _order_link("cancelOrder"),
    "GetOrder": _order_link("getOrder"),
    "GetOrderEvents": _order_link("getOrderEvents"),
    "ListWalletOrders": {
        "operationId": "listWalletOrders",
        "parameters": {"wallet": "$response.body#/userWallet"},
    },
}

# What a response carrying an order lets a client do next (OpenAPI links), by operation
# and status: followed by stateful clients such as schemathesis (create -> execute ->
# cancel -> list).
LINKS: dict[tuple[str, str], dict[str, Schema]] = {
    ("createOrder", "201"): _ORDER_LINKS,
    ("executeNewOrder", "202"): _ORDER_LINKS,
    ("executeOrder", "202"): _ORDER_LINKS,
    ("cancelOrder", "200"): _ORDER_LINKS,
}


def _linked(paths: dict[str, Schema]) -> dict[str, Schema]:
    for item in paths.values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if links := LINKS.get((operation["operationId"], status)):
                    response["links"] = links
    return paths


@functools.lru_cache(maxsize=8)
def document(settings: Settings) -> Schema:
    """The document for a server with these settings (MAX_INPUT_AMOUNT is a bound, and
    the development routes exist only outside production)."""
    paths = _paths()
    if settings.is_production:
        del paths["/api/dev/pools"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "order-engine",
            "version": "1",
            "description": "Executes token swap orders on simulated Solana DEXs. Every error "
            "has the shape of the Error schema; amounts are decimal strings in responses. "
            "The WebSocket messages are described in /asyncapi.json; docs/api.md tells "
            "the whole API in prose.",
        },
        "paths": _linked(_keyed(_tagged(paths))),
        "components": {
            "schemas": components(settings),
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": API_KEY_HEADER,
                    "description": "required when the server has API_KEYS; a WebSocket may "
                    "pass ?apiKey= instead",
                }
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[SETTINGS]))
