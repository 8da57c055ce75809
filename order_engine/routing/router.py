"""Asks every venue for a quote at once and picks the best output net of fees."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from decimal import Decimal

import attrs

from order_engine.routing.pools import BPS, Quote
from order_engine.routing.tokens import Token
from order_engine.routing.venues import NoPool, Venue

log = logging.getLogger(__name__)


class NoRoute(Exception):
    """No venue quoted the pair: the order cannot be executed."""


class QuotesUnavailable(Exception):
    """No venue quoted, but some failed or timed out rather than lacking a pool: a
    transient failure, worth trying again later."""


@attrs.frozen
class RoutingDecision:
    quotes: tuple[Quote, ...]
    best: Quote


def choose_best(quotes: Sequence[Quote]) -> Quote:
    """The quote paying the most; on a tie, the first venue asked."""
    if not quotes:
        raise NoRoute("no venue quoted")
    return max(quotes, key=lambda q: q.amount_out)


def min_amount_out(quoted: Decimal, slippage_bps: int, token: Token) -> Decimal:
    """The least the swap may pay: the quote less the slippage tolerance, rounded down."""
    return token.round_down(quoted * (BPS - slippage_bps) / BPS)


class Router:
    def __init__(self, venues: Sequence[Venue], *, quote_timeout_s: float) -> None:
        self._venues = list(venues)
        self._quote_timeout_s = quote_timeout_s

    @property
    def venues(self) -> dict[str, Venue]:
        return {v.name: v for v in self._venues}

    async def _quote(
        self, venue: Venue, src: Token, dst: Token, amount: Decimal
    ) -> Quote | Exception:
        """The venue's quote, or why it gave none."""
        try:
            return await asyncio.wait_for(venue.quote(src, dst, amount), self._quote_timeout_s)
        except NoPool as exc:
            return exc
        except TimeoutError as exc:
            log.warning("quote from %s timed out after %ss", venue.name, self._quote_timeout_s)
            return exc
        except Exception as exc:
            # One venue failing must not fail the order while another can quote.
            log.exception("quote from %s failed", venue.name)
            return exc

    async def route(self, src: Token, dst: Token, amount: Decimal) -> RoutingDecision:
        """Raises NoRoute when no venue can quote the pair, QuotesUnavailable when the
        venues that might have failed to answer."""
        results = await asyncio.gather(*(self._quote(v, src, dst, amount) for v in self._venues))
        quotes = tuple(q for q in results if isinstance(q, Quote) and q.amount_out > 0)
        if not quotes:
            failures = [r for r in results if not isinstance(r, Quote | NoPool)]
            if failures:
                raise QuotesUnavailable(
                    f"no venue could quote {src.symbol} -> {dst.symbol}: "
                    + "; ".join(repr(f) for f in failures)
                )
            raise NoRoute(f"no venue quotes {src.symbol} -> {dst.symbol} for {amount}")
        best = choose_best(quotes)
        log.info(
            "routed %s %s -> %s to %s: %s",
            amount,
            src.symbol,
            dst.symbol,
            best.dex,
            ", ".join(f"{q.dex}={q.amount_out}" for q in quotes),
        )
        return RoutingDecision(quotes=quotes, best=best)
