"""Development-only routes: launching pools on the simulated DEXs by hand.

Registered only outside production (see routes.py), where the path is an ordinary 404.
"""

from __future__ import annotations

from aiohttp import web

from order_engine.api.appkeys import CHAIN_CLIENT, SETTINGS
from order_engine.api.schemas import parse_json, parse_pool
from order_engine.chain.market import DEXES, new_pool
from order_engine.domain.routes import price_of
from order_engine.formats import decimal_str

# Slots to wait for the launch to reach this process's view before answering anyway.
LAUNCH_WAIT_SLOTS = 20


async def launch_pool(request: web.Request) -> web.Response:
    # The body's size and content type were checked by the body middleware.
    body = parse_pool(parse_json(await request.read()), dexes=DEXES)
    pool = new_pool(body.dex, body.token_a, body.token_b, body.reserve_a, body.reserve_b)
    wait_s = LAUNCH_WAIT_SLOTS * request.app[SETTINGS].chain_slot_ms / 1000
    state, slot = await request.app[CHAIN_CLIENT].launch(pool, timeout_s=wait_s)
    return web.json_response(
        {
            "dex": state.dex,
            "tokenA": state.token_a,
            "tokenB": state.token_b,
            "reserveA": decimal_str(state.reserve_a),
            "reserveB": decimal_str(state.reserve_b),
            "price": decimal_str(price_of(state.reserve_a, state.reserve_b)),
            "tradingFromSlot": slot,
        },
        status=201,
    )
