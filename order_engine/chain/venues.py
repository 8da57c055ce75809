"""Raydium and Meteora as the router sees them: quotes from this process's view of the
chain, after the simulated quote latency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from order_engine.chain.market import DEXES, Market
from order_engine.domain.routes import Quote
from order_engine.routing.venues import Ask, NoPool


class ChainVenue:
    def __init__(self, name: str, market: Callable[[], Market], *, quote_delay_s: float) -> None:
        self._name = name
        self._market = market
        self.quote_delay_s = quote_delay_s

    @property
    def name(self) -> str:
        return self._name

    async def quotes(self, asks: Sequence[Ask]) -> list[Quote | None]:
        if self.quote_delay_s > 0:
            await asyncio.sleep(self.quote_delay_s)
        # Read after the delay: the view may have moved on by then, as an RPC node's would.
        market = self._market()
        answers: list[Quote | None] = []
        for input_token, output_token, amount in asks:
            try:
                pool = market.pool(self._name, input_token.symbol, output_token.symbol)
            except NoPool:
                answers.append(None)
            else:
                answers.append(pool.quote(input_token.symbol, amount))
        return answers


def chain_venues(market: Callable[[], Market], *, quote_delay_s: float) -> list[ChainVenue]:
    """Raydium and Meteora, in the order the router asks them."""
    return [ChainVenue(name, market, quote_delay_s=quote_delay_s) for name in DEXES]
