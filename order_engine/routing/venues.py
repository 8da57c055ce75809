"""What a DEX venue offers the engine: quotes, swaps, and the status of a sent swap."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from typing import Protocol

import attrs
import base58

from order_engine.routing.pools import Quote
from order_engine.routing.tokens import Token


class NoPool(Exception):
    """The venue has no pool for the pair: not an error, just not a candidate."""


class VenueUnavailable(Exception):
    """A transient failure: the request may succeed if tried again."""


class SlippageExceeded(Exception):
    def __init__(self, amount_out: Decimal, min_amount_out: Decimal) -> None:
        super().__init__(f"the pool would pay {amount_out}, below the minimum of {min_amount_out}")
        self.amount_out = amount_out
        self.min_amount_out = min_amount_out


@attrs.frozen
class SwapLeg:
    """One pool swap of a route. No input amount: spend what the earlier legs paid out
    in this leg's input token (the second hop of a path)."""

    dex: str
    input_token: str
    output_token: str
    input_amount: Decimal | None


@attrs.frozen
class SwapTransaction:
    signature: str
    order_id: uuid.UUID
    dex: str
    input_token: str
    output_token: str
    input_amount: Decimal
    min_amount_out: Decimal
    # Empty for a plain swap on `dex`; the legs of a split or two-hop route otherwise,
    # all settled together or not at all.
    legs: tuple[SwapLeg, ...] = ()


@attrs.frozen
class SwapReceipt:
    signature: str
    order_id: uuid.UUID
    dex: str
    amount_out: Decimal
    executed_price: Decimal


def transaction_signature(
    order_id: uuid.UUID, dex: str, input_amount: Decimal, min_amount_out: Decimal, attempt: int
) -> str:
    """A Solana-shaped signature (base58 of 64 bytes) that names exactly this swap.

    Derived, not random, so that the same built transaction always has the same
    signature, and the chain can refuse to run it twice.
    """
    material = f"{order_id}|{dex}|{input_amount}|{min_amount_out}|{attempt}".encode()
    return str(base58.b58encode(hashlib.sha512(material).digest()).decode())


class Venue(Protocol):
    @property
    def name(self) -> str: ...

    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        """Raises NoPool when the pair is not traded here, VenueUnavailable on a blip."""
        ...

    async def execute(self, tx: SwapTransaction) -> SwapReceipt:
        """Send and confirm `tx`. Raises SlippageExceeded or VenueUnavailable.

        Sending a transaction that the chain already settled returns its receipt again.
        """
        ...

    async def find_swap(self, signature: str) -> SwapReceipt | None:
        """What the chain settled under `signature`, if anything."""
        ...
