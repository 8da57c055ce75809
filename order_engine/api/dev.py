"""Development-only routes: launching pools on the simulated DEXs by hand.

Registered only outside production (see routes.py), where the path is an ordinary 404.
"""

from __future__ import annotations

from aiohttp import web

from order_engine.api.schemas import parse_pool
from order_engine.api.strict_json import parse_json
from order_engine.appkeys import MARKET
from order_engine.chain.market import DEXES, new_pool
from order_engine.formats import decimal_str


async def launch_pool(request: web.Request) -> web.Response:
    # The body's size and content type were checked by the body middleware.
    body = parse_pool(parse_json(await request.read()), dexes=DEXES)
    pool = new_pool(body.dex, body.token_a, body.token_b, body.reserve_a, body.reserve_b)
    request.app[MARKET].add_pool(pool)
    return web.json_response(
        {
            "dex": pool.dex,
            "tokenA": pool.token_a.symbol,
            "tokenB": pool.token_b.symbol,
            "reserveA": decimal_str(pool.reserve_a),
            "reserveB": decimal_str(pool.reserve_b),
            "price": decimal_str(pool.price_a_in_b),
        },
        status=201,
    )
