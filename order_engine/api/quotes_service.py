"""Quotes without an order: what the router would do now for a pair and an amount.

The only place the API touches the router, so that a change of the router's interface
(split routes, two-hop paths) is absorbed here.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from order_engine.domain.routes import Quote, Route
from order_engine.routing.router import NoRoute, QuotesUnavailable, Router
from order_engine.routing.tokens import Token

__all__ = ["QuoteResult", "QuotesUnavailable", "quote_pair"]


@attrs.frozen
class QuoteResult:
    quotes: tuple[Quote, ...]
    """One per DEX that quotes the direct pair, as the routing event carries them."""
    best: Route | None
    """The route the router would take now; None when no DEX quotes the pair."""


async def quote_pair(router: Router, src: Token, dst: Token, amount: Decimal) -> QuoteResult:
    """Raises QuotesUnavailable when every DEX that could quote failed or timed out."""
    try:
        decision = await router.route(src, dst, amount)
    except NoRoute:
        return QuoteResult(quotes=(), best=None)
    return QuoteResult(quotes=decision.quotes, best=decision.route)
