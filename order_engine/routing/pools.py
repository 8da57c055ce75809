"""Liquidity pools and their swap math. Pure: no I/O, no clock."""

from __future__ import annotations

from decimal import ROUND_DOWN, Context, Decimal, localcontext

import attrs

from order_engine.routing.tokens import Token

BPS = Decimal(10_000)
_PRICE_CONTEXT = Context(prec=18)
# Wide enough that the reserves and any input stay exact, and rounding toward zero so
# that the division can never round up to more than the pool holds.
_SWAP_CONTEXT = Context(prec=60, rounding=ROUND_DOWN)


def price_of(amount_in: Decimal, amount_out: Decimal) -> Decimal:
    """Output token per input token, to 18 significant digits."""
    return _PRICE_CONTEXT.divide(amount_out, amount_in).normalize(_PRICE_CONTEXT)


@attrs.frozen
class Quote:
    dex: str
    input_token: str
    output_token: str
    input_amount: Decimal
    amount_out: Decimal
    fee_bps: int
    price_impact_bps: Decimal

    @property
    def price(self) -> Decimal:
        return price_of(self.input_amount, self.amount_out)


@attrs.define
class ConstantProductPool:
    """An x*y=k pool that takes its fee from the input, as Raydium's AMM does."""

    dex: str
    token_a: Token
    token_b: Token
    reserve_a: Decimal
    reserve_b: Decimal
    fee_bps: int

    def _sides(self, input_symbol: str) -> tuple[Token, Decimal, Decimal]:
        """The output token and the (input, output) reserves for a swap from `input_symbol`."""
        if input_symbol == self.token_a.symbol:
            return self.token_b, self.reserve_a, self.reserve_b
        if input_symbol == self.token_b.symbol:
            return self.token_a, self.reserve_b, self.reserve_a
        raise ValueError(f"{input_symbol} is not in this pool")

    def quote(self, input_symbol: str, amount_in: Decimal) -> Quote:
        token_out, reserve_in, reserve_out = self._sides(input_symbol)
        with localcontext(_SWAP_CONTEXT):
            in_after_fee = amount_in * (BPS - self.fee_bps) / BPS
            reserve_in_after = reserve_in + in_after_fee
            exact_out = reserve_out * in_after_fee / reserve_in_after
        amount_out = token_out.round_down(exact_out)
        impact = (in_after_fee / reserve_in_after * BPS).quantize(Decimal("0.01"))
        return Quote(
            dex=self.dex,
            input_token=input_symbol,
            output_token=token_out.symbol,
            input_amount=amount_in,
            amount_out=amount_out,
            fee_bps=self.fee_bps,
            price_impact_bps=impact,
        )

    def apply(self, input_symbol: str, amount_in: Decimal, amount_out: Decimal) -> None:
        """Move the reserves by an executed swap; the fee stays in the pool."""
        if input_symbol == self.token_a.symbol:
            self.reserve_a += amount_in
            self.reserve_b -= amount_out
        else:
            self.reserve_b += amount_in
            self.reserve_a -= amount_out
