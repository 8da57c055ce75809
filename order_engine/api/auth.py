"""API keys: with API_KEYS set, /api routes and WebSockets need one; /health and /metrics
stay open for probes and scrapers, /openapi.json for client generators."""

from __future__ import annotations

import hmac

from aiohttp import hdrs, web

from order_engine.api.appkeys import SETTINGS
from order_engine.api.errors import ApiError, Handler

HEADER = "X-API-Key"
PROTECTED_PREFIXES = ("/api/", "/ws")


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def _presented_key(request: web.Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None and _is_upgrade(request):
        # Browsers cannot set headers on a WebSocket.
        key = request.query.get("apiKey")
    return key


def _known(key: str, keys: tuple[str, ...]) -> bool:
    # Every key compared, in constant time each, so timing tells nothing about which.
    matches = [hmac.compare_digest(key.encode(), k.encode()) for k in keys]
    return any(matches)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    keys = request.app[SETTINGS].api_keys
    if keys and request.path.startswith(PROTECTED_PREFIXES):
        key = _presented_key(request)
        if key is None or not _known(key, keys):
            raise ApiError(
                401,
                "unauthorized",
                f"a valid {HEADER} header is required"
                + (" (or ?apiKey= on a WebSocket)" if _is_upgrade(request) else ""),
            )
    return await handler(request)
