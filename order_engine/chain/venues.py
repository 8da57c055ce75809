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

    def quotes(self, asks: Sequence[Ask]) -> asyncio.Future[list[Quote | None]]:
        """Answered by a timer at the end of the quote latency rather than by a task that
        sleeps: a task would cost a turn of the event loop to start before it slept, and
        a quote round waits for every venue's."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Quote | None]] = loop.create_future()

        def reply() -> None:
            if answer.done():
                return
            try:
                answer.set_result(self._answers(asks))
            except Exception as exc:
                answer.set_exception(exc)

        if self.quote_delay_s > 0:
            timer = loop.call_later(self.quote_delay_s, reply)
            answer.add_done_callback(lambda _: timer.cancel())
        else:
            reply()
        return answer

    def _answers(self, asks: Sequence[Ask]) -> list[Quote | None]:
        # Read when the answer is due: the view may have moved on by then, as an RPC
        # node's would.
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
