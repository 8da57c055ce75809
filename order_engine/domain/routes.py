"""Quotes and routes: what a venue offers for a swap, and the way an order is executed.

Pure values. The router makes them, the order stores its chosen route, and the chain
transaction is built from that stored route.
"""

from __future__ import annotations

from decimal import Context, Decimal

import attrs

_PRICE_CONTEXT = Context(prec=18)

DIRECT, SPLIT, TWO_HOP = "direct", "split", "two-hop"
# An order's `dex` for a route of several legs (API.md).
MULTI_LEG_DEXES = frozenset({"split", "multi"})


def price_of(amount_in: Decimal, amount_out: Decimal) -> Decimal:
    """Output token per input token, to 18 significant digits."""
    return _PRICE_CONTEXT.divide(amount_out, amount_in).normalize(_PRICE_CONTEXT)


@attrs.frozen
class RouteAsk:
    """What the router is asked for a market order: its pair and amount. The order's
    queue entry carries it, so that quoting starts before the order is read back."""

    input_token: str
    output_token: str
    input_amount: Decimal


@attrs.frozen
class Quote:
    dex: str
    input_token: str
    output_token: str
    input_amount: Decimal
    amount_out: Decimal
    fee_bps: int
    price_impact_bps: Decimal
    # The fee in input-token units; kept by the pool, so it is part of what the swap costs.
    fee: Decimal = Decimal(0)

    @property
    def price(self) -> Decimal:
        return price_of(self.input_amount, self.amount_out)


@attrs.frozen
class SwapLeg:
    """One pool swap of a transaction. No input amount: spend what the earlier legs paid
    out in this leg's input token (the second hop of a path)."""

    dex: str
    input_token: str
    output_token: str
    input_amount: Decimal | None


@attrs.frozen
class Route:
    """A way to execute the order: one or more venue quotes and what they pay together."""

    kind: str
    legs: tuple[Quote, ...]
    amount_out: Decimal

    @property
    def dex(self) -> str:
        """The DEX of a one-leg route; `split` or `multi` (API.md) otherwise."""
        if self.kind == DIRECT:
            return self.legs[0].dex
        return "split" if self.kind == SPLIT else "multi"

    @property
    def input_amount(self) -> Decimal:
        """What the route spends: a path's first leg, or all the legs of a split."""
        if self.kind == TWO_HOP:
            return self.legs[0].input_amount
        return sum((q.input_amount for q in self.legs), Decimal(0))

    def swap_legs(self) -> tuple[SwapLeg, ...]:
        """The legs to send. A path's second hop spends what the first one actually pays,
        not what it was quoted."""
        return tuple(
            SwapLeg(
                q.dex,
                q.input_token,
                q.output_token,
                None if self.kind == TWO_HOP and i > 0 else q.input_amount,
            )
            for i, q in enumerate(self.legs)
        )

    def describe(self) -> str:
        legs = " + ".join(
            f"{q.dex}:{q.input_amount} {q.input_token}->{q.amount_out} {q.output_token}"
            for q in self.legs
        )
        return f"{self.kind}[{legs}]={self.amount_out}"
