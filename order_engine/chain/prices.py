"""The best price a pair trades at now: what the smallest order would get, and more than
any route of any size can get. Pure.

A pool pays at most its marginal price net of its lowest fee, whatever the amount (on
x*y=k every unit more is paid less); a split pays an average of its venues; a path
multiplies its hops. So the best of every venue direct and of every path through a hub
bounds every route the router can find: limits above it cannot fire, and the trigger
index only checks the orders whose limit it reaches.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Context, Decimal

from order_engine.chain.market import DEXES, Market
from order_engine.chain.model import curve_of
from order_engine.routing.pools import BPS, Pool
from order_engine.routing.router import HUBS
from order_engine.routing.venues import NoPool

# Rounded up, so that the bound stays a bound.
_PRICE = Context(prec=18, rounding=ROUND_CEILING)


def marginal_price(pool: Pool, input_symbol: str) -> Decimal:
    """Output per input of an infinitely small swap, net of the pool's lowest fee."""
    _, fee_bps, _, _ = curve_of(pool)
    if input_symbol == pool.token_a.symbol:
        reserve_in, reserve_out = pool.reserve_a, pool.reserve_b
    else:
        reserve_in, reserve_out = pool.reserve_b, pool.reserve_a
    return _PRICE.divide(reserve_out * (BPS - fee_bps), reserve_in * BPS)


def _best_hop(market: Market, input_symbol: str, output_symbol: str) -> Decimal | None:
    best: Decimal | None = None
    for dex in DEXES:
        try:
            price = marginal_price(market.pool(dex, input_symbol, output_symbol), input_symbol)
        except NoPool:
            continue
        if best is None or price > best:
            best = price
    return best


def best_price(market: Market, input_symbol: str, output_symbol: str) -> Decimal | None:
    """The pair's best price now, outputToken per inputToken; None if no route exists."""
    best = _best_hop(market, input_symbol, output_symbol)
    for hub in HUBS:
        if hub in (input_symbol, output_symbol):
            continue
        first = _best_hop(market, input_symbol, hub)
        second = _best_hop(market, hub, output_symbol) if first is not None else None
        if first is not None and second is not None:
            path = _PRICE.multiply(first, second)
            if best is None or path > best:
                best = path
    return None if best is None else best.normalize(_PRICE)
