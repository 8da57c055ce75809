"""GET /api/tokens and GET /api/quote: what can be traded, and at what price now."""

from __future__ import annotations

from aiohttp import web

from order_engine.api.appkeys import CHAIN_CLIENT, ROUTER, SETTINGS
from order_engine.api.errors import RETRY_AFTER_S, ApiError
from order_engine.api.quotes_service import QuotesUnavailable, quote_pair
from order_engine.api.schemas import parse_quote_query
from order_engine.api.serialize import json_body, quote_json, route_json
from order_engine.routing.tokens import TOKENS


async def tokens(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "tokens": [
                {"symbol": t.symbol, "mint": t.mint, "decimals": t.decimals}
                for t in TOKENS.values()
            ]
        }
    )


async def quote(request: web.Request) -> web.Response:
    query = parse_quote_query(
        request.query, max_input_amount=request.app[SETTINGS].max_input_amount
    )
    try:
        result = await quote_pair(
            request.app[ROUTER], query.input_token, query.output_token, query.input_amount
        )
    except QuotesUnavailable as exc:
        raise ApiError(
            503,
            "unavailable",
            f"no DEX answered in time: {exc}",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    # The slot of this process's view once routed: processes at one slot quote alike.
    slot = request.app[CHAIN_CLIENT].slot
    best = None if result.best is None else route_json(result.best)
    quotes = [quote_json(q) for q in result.quotes]
    return json_body({"quotes": quotes, "best": best, "slot": slot})
