"""What a DEX venue offers the router: a quote for a swap of one pair."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from order_engine.domain.routes import Quote
from order_engine.routing.tokens import Token


class NoPool(Exception):
    """The venue has no pool for the pair: not an error, just not a candidate."""


class VenueUnavailable(Exception):
    """A transient failure: the request may succeed if tried again."""


class Venue(Protocol):
    @property
    def name(self) -> str: ...

    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        """Raises NoPool when the pair is not traded here, VenueUnavailable on a blip."""
        ...
