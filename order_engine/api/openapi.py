"""GET /openapi.json: the OpenAPI 3.1 description of every route, written by hand.

Written rather than generated because the contract (API.md) is the source: the document
says what clients may rely on, and a test checks that it and the route table agree.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from order_engine.chain.market import DEXES
from order_engine.domain.orders import OrderStatus, OrderType
from order_engine.routing.tokens import TOKENS

Schema = dict[str, Any]

_DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["10.5"]}
_NULLABLE_DECIMAL = {"oneOf": [_DECIMAL, {"type": "null"}]}
_TIMESTAMP = {"type": "string", "format": "date-time", "examples": ["2026-11-24T10:15:30.123Z"]}
_NULLABLE_STRING = {"type": ["string", "null"]}
_TOKEN = {"type": "string", "enum": list(TOKENS)}
_UUID_PATTERN = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
_CLIENT_ORDER_ID = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9._:-]{1,64}$",
    "description": "the client's own name for the order, unique per wallet",
}
_WALLET = {
    "type": "string",
    "pattern": r"^[1-9A-HJ-NP-Za-km-z]{32,44}$",
    "description": "a Solana address: base58 that decodes to 32 bytes",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_MEANINGS = {
    400: "invalid_json, validation_error or invalid_order_id",
    401: "unauthorized: API_KEYS is set and the request has no valid X-API-Key",
    404: "order_not_found, or not_found for an unknown route",
    409: "status_conflict, idempotency_in_progress, or duplicate_client_order_id (with the "
    "orderId of the order that has the clientOrderId already)",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "idempotency_key_reused",
    429: "rate_limited; has Retry-After",
    503: "unavailable: Postgres or Redis unreachable; has Retry-After",
}


def _errors(*statuses: int) -> dict[str, Schema]:
    return {str(s): _json(_ref("Error"), _ERROR_MEANINGS[s]) for s in statuses}


_ORDER_ID = {
    "name": "orderId",
    "in": "path",
    "required": True,
    "description": "a UUID; anything else is 400 invalid_order_id",
    "schema": {"type": "string", "pattern": _UUID_PATTERN},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "the same key and body within 24 h replays the first response",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}

COMPONENTS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "orderId": {
                        "type": "string",
                        "format": "uuid",
                        "description": "duplicate_client_order_id: the order of that name",
                    },
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {
                                "field": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    },
    "OrderBody": {
        "type": "object",
        "required": ["userWallet", "inputToken", "outputToken", "inputAmount"],
        "additionalProperties": False,
        "properties": {
            "userWallet": _WALLET,
            "inputToken": _TOKEN,
            "outputToken": _TOKEN,
            "inputAmount": {
                "description": "> 0, at most the token's decimals and MAX_INPUT_AMOUNT",
                "oneOf": [{"type": "number"}, {"type": "string"}],
            },
            "type": {"type": "string", "enum": [t.value for t in OrderType]},
            "slippageBps": {"type": "integer", "minimum": 0, "maximum": 5000, "default": 50},
            "limitPrice": {"oneOf": [{"type": "number"}, {"type": "string"}]},
            "expiresAt": {"type": "string", "format": "date-time"},
            "clientOrderId": _CLIENT_ORDER_ID,
        },
    },
    "Order": {
        "type": "object",
        "required": [
            "orderId",
            "type",
            "status",
            "userWallet",
            "inputToken",
            "outputToken",
            "inputAmount",
            "slippageBps",
            "createdAt",
            "updatedAt",
        ],
        "properties": {
            "orderId": {"type": "string", "format": "uuid"},
            "type": {"type": "string", "enum": [t.value for t in OrderType]},
            "status": {"type": "string", "enum": [s.value for s in OrderStatus]},
            "userWallet": {"type": "string"},
            "inputToken": {"type": "string"},
            "outputToken": {"type": "string"},
            "inputAmount": _DECIMAL,
            "slippageBps": {"type": "integer"},
            "limitPrice": _NULLABLE_DECIMAL,
            "expiresAt": {"oneOf": [_TIMESTAMP, {"type": "null"}]},
            "dex": _NULLABLE_STRING,
            "quotedAmountOut": _NULLABLE_DECIMAL,
            "minAmountOut": _NULLABLE_DECIMAL,
            "amountOut": _NULLABLE_DECIMAL,
            "executedPrice": _NULLABLE_DECIMAL,
            "txHash": _NULLABLE_STRING,
            "attempts": {"type": "integer"},
            "failureCode": _NULLABLE_STRING,
            "failureReason": _NULLABLE_STRING,
            "createdAt": _TIMESTAMP,
            "updatedAt": _TIMESTAMP,
            "clientOrderId": {"oneOf": [_CLIENT_ORDER_ID, {"type": "null"}]},
        },
    },
    "AcceptedOrder": {
        "allOf": [
            _ref("Order"),
            {
                "type": "object",
                "required": ["wsUrl"],
                "properties": {"wsUrl": {"type": "string", "examples": ["/ws/orders/3f0c…"]}},
            },
        ]
    },
    "StatusMessage": {
        "type": "object",
        "required": ["type", "orderId", "status", "seq", "timestamp", "data"],
        "properties": {
            "type": {"const": "status"},
            "orderId": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": [s.value for s in OrderStatus]},
            "seq": {"type": "integer", "minimum": 1},
            "timestamp": _TIMESTAMP,
            "data": {"type": "object"},
            "clientOrderId": {**_CLIENT_ORDER_ID, "description": "only if the order has one"},
        },
    },
    "Quote": {
        "type": "object",
        "required": ["dex", "amountOut", "price", "feeBps", "priceImpactBps"],
        "properties": {
            "dex": {"type": "string"},
            "amountOut": _DECIMAL,
            "price": _DECIMAL,
            "feeBps": {"type": "integer"},
            "priceImpactBps": _DECIMAL,
        },
    },
    "Route": {
        "type": "object",
        "required": ["amountOut", "legs"],
        "properties": {
            "amountOut": _DECIMAL,
            "legs": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["dex", "inputToken", "outputToken", "inputAmount", "amountOut"],
                    "properties": {
                        "dex": {"type": "string"},
                        "inputToken": {"type": "string"},
                        "outputToken": {"type": "string"},
                        "inputAmount": _DECIMAL,
                        "amountOut": _DECIMAL,
                    },
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "description": "One key per readiness check (postgres, redis, chain): ok, or down "
        "(chain: stalled); chainSlot is the slot this process's view of the chain is at",
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
                "description": "stalled: no slot of the shared chain reached this process lately",
            },
            "chainSlot": {"type": "integer", "description": "the slot this process's view is at"},
            "queueDepth": {"type": ["integer", "null"]},
            "inFlight": {"type": "integer"},
            "websockets": {"type": "integer"},
        },
        "additionalProperties": {"enum": ["ok", "down"]},
    },
}

_ORDER_BODY = {"required": True, "content": {"application/json": {"schema": _ref("OrderBody")}}}

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
    "503": _json(_ref("Health"), "a check failed (named down); has Retry-After"),
}

_SOCKET = {
    "101": {"description": "switched to a WebSocket"},
    **_errors(400, 429),
}

PATHS: dict[str, Schema] = {
    "/api/orders": {
        "post": {
            "summary": "Persist a pending order; nothing runs until it is executed",
            "operationId": "createOrder",
            "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": _ORDER_BODY,
            "responses": _limited(
                {
                    "201": _json(_ref("Order"), "the pending order"),
                    **_errors(400, 409, 413, 415, 422, 429, 503),
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
                    **_errors(400, 409, 413, 415, 422, 429, 503),
                }
            ),
        },
        "get": {
            "summary": "The execute socket (GET with Upgrade: websocket)",
            "description": "First message: an order body. The server answers "
            '{"type": "accepted", "order": Order}, then the status messages of the order, '
            "and closes 1000 after a terminal one. A bad body: one "
            '{"type": "error", "code", "message", "details"} and close 4400.',
            "operationId": "executeSocket",
            "responses": _SOCKET,
        },
    },
    "/api/orders/{orderId}/execute": {
        "post": {
            "summary": "Queue an existing pending order",
            "operationId": "executeOrder",
            "parameters": [_ORDER_ID],
            "responses": {
                "202": _json(_ref("Order"), "the order, queued"),
                **_errors(400, 404, 409, 413, 415, 503),
            },
        }
    },
    "/api/orders/{orderId}/cancel": {
        "post": {
            "summary": "Cancel a pending or waiting order",
            "operationId": "cancelOrder",
            "parameters": [_ORDER_ID],
            "responses": {
                "200": _json(_ref("Order"), "the cancelled order"),
                **_errors(400, 404, 409, 413, 415, 503),
            },
        }
    },
    "/api/orders/{orderId}": {
        "get": {
            "summary": "The order's current state",
            "operationId": "getOrder",
            "parameters": [_ORDER_ID],
            "responses": {
                "200": _json(_ref("Order"), "the order"),
                **_errors(400, 404, 503),
            },
        }
    },
    "/api/orders/{orderId}/events": {
        "get": {
            "summary": "The order's whole status history, oldest first",
            "operationId": "getOrderEvents",
            "parameters": [_ORDER_ID],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["events"],
                        "properties": {"events": {"type": "array", "items": _ref("StatusMessage")}},
                    },
                    "every event",
                ),
                **_errors(400, 404, 503),
            },
        }
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
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
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
                    "description": "only the wallet's order of this clientOrderId (one at most)",
                    "schema": _CLIENT_ORDER_ID,
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["orders", "nextCursor"],
                        "properties": {
                            "orders": {"type": "array", "items": _ref("Order")},
                            "nextCursor": {"type": ["string", "null"]},
                        },
                    },
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
                    "schema": {
                        "type": "string",
                        "pattern": r"^\d{1,9}(\.\d{1,6})?$",
                        "examples": ["10"],
                    },
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["quotes", "best", "slot"],
                        "properties": {
                            "quotes": {"type": "array", "items": _ref("Quote")},
                            "best": {"oneOf": [_ref("Route"), {"type": "null"}]},
                            "slot": {
                                "type": "integer",
                                "description": "the chain slot whose prices were quoted",
                            },
                        },
                    },
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
                    {
                        "type": "object",
                        "required": ["tokens"],
                        "properties": {
                            "tokens": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["symbol", "mint", "decimals"],
                                    "properties": {
                                        "symbol": {"type": "string"},
                                        "mint": {"type": "string"},
                                        "decimals": {"type": "integer"},
                                    },
                                },
                            }
                        },
                    },
                    "every token",
                )
            },
        }
    },
    "/ws/orders": {
        "get": {
            "summary": "Live status messages of every order of one wallet (WebSocket)",
            "operationId": "walletSocket",
            "parameters": [{"name": "wallet", "in": "query", "required": True, "schema": _WALLET}],
            "responses": _SOCKET,
        }
    },
    "/ws/orders/{orderId}": {
        "get": {
            "summary": "One order's status messages: replay after `since`, then live (WebSocket)",
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
            "summary": "Launch a pool on a simulated DEX (development only: 404 in production)",
            "operationId": "launchPool",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["dex", "tokenA", "tokenB", "reserveA", "reserveB"],
                            "additionalProperties": False,
                            "properties": {
                                "dex": {"type": "string", "enum": list(DEXES)},
                                "tokenA": _TOKEN,
                                "tokenB": _TOKEN,
                                "reserveA": {"oneOf": [{"type": "number"}, {"type": "string"}]},
                                "reserveB": {"oneOf": [{"type": "number"}, {"type": "string"}]},
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _json(
                    {
                        "type": "object",
                        "required": [
                            "dex",
                            "tokenA",
                            "tokenB",
                            "reserveA",
                            "reserveB",
                            "price",
                            "tradingFromSlot",
                        ],
                        "properties": {
                            "dex": {"type": "string"},
                            "tokenA": {"type": "string"},
                            "tokenB": {"type": "string"},
                            "reserveA": _DECIMAL,
                            "reserveB": _DECIMAL,
                            "price": _DECIMAL,
                            "tradingFromSlot": {
                                "type": ["integer", "null"],
                                "description": "the first slot it trades in on this process;"
                                " null if that took longer than 20 slots",
                            },
                        },
                    },
                    "the new pool",
                ),
                "409": _json(_ref("Error"), "pool_exists: the DEX has a pool of the pair"),
                **_errors(400, 404, 413, 415),
            },
        }
    },
    "/livez": {
        "get": {
            "summary": "Liveness: the process answers (whatever its dependencies do)",
            "operationId": "livez",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                    },
                    "the process answers",
                )
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
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}


def _keyed(paths: dict[str, Schema]) -> dict[str, Schema]:
    """With API_KEYS set, every /api route and socket needs a key and may answer 401."""
    for path, item in paths.items():
        if path.startswith(("/api/", "/ws")):
            for operation in item.values():
                operation["responses"].update(_errors(401))
                operation["security"] = [{}, {"apiKey": []}]
    return paths


DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "order-engine",
        "version": "1",
        "description": "Executes token swap orders on simulated Solana DEXs. Every error has "
        "the shape of the Error schema. Amounts are decimal strings in responses.",
    },
    "paths": _keyed(PATHS),
    "components": {
        "schemas": COMPONENTS,
        "securitySchemes": {
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "required when the server has API_KEYS; a WebSocket may "
                "pass ?apiKey= instead",
            }
        },
    },
}


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
