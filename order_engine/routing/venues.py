"""What a DEX venue offers the router: quotes for swaps."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from decimal import Decimal
from typing import Protocol

from order_engine.domain.routes import Quote
from order_engine.routing.tokens import Token


class NoPool(Exception):
    """The venue has no pool for the pair: not an error, just not a candidate."""


class VenueUnavailable(Exception):
    """A transient failure: the request may succeed if tried again."""


# What to quote: input token, output token, input amount.
Ask = tuple[Token, Token, Decimal]


class Venue(Protocol):
    @property
    def name(self) -> str: ...

    def quotes(self, asks: Sequence[Ask]) -> Awaitable[list[Quote | None]]:
        """One answer per ask, in one request (a coroutine, or a future the venue answers
        itself): a quote, or None where the pair is not traded here. Raises
        VenueUnavailable on a blip."""
        ...
