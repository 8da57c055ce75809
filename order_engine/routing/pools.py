"""Liquidity pools and their swap math. Pure: no I/O, no clock."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Protocol

import attrs

from order_engine.domain.routes import Quote, price_of
from order_engine.routing.tokens import Token

BPS = Decimal(10_000)
_FEE_CONTEXT = Context(prec=18)
# Wide enough that the reserves and any input stay exact, and rounding toward zero so
# that the division can never round up to more than the pool holds.
_SWAP_CONTEXT = Context(prec=60, rounding=ROUND_DOWN)
_WALK_CONTEXT = Context(prec=40)


class Pool(Protocol):
    dex: str
    token_a: Token
    token_b: Token
    reserve_a: Decimal
    reserve_b: Decimal

    def quote(self, input_symbol: str, amount_in: Decimal) -> Quote: ...

    def apply(self, input_symbol: str, amount_in: Decimal, amount_out: Decimal) -> None: ...

    def shift_price(self, factor: Decimal) -> None: ...

    @property
    def price_a_in_b(self) -> Decimal: ...


@attrs.define
class _CurvePool:
    """x*y=k reserves and a fee taken from the input; subclasses decide the fee rate."""

    dex: str
    token_a: Token
    token_b: Token
    reserve_a: Decimal
    reserve_b: Decimal

    def _sides(self, input_symbol: str) -> tuple[Token, Decimal, Decimal]:
        """The output token and the (input, output) reserves for a swap from `input_symbol`."""
        if input_symbol == self.token_a.symbol:
            return self.token_b, self.reserve_a, self.reserve_b
        if input_symbol == self.token_b.symbol:
            return self.token_a, self.reserve_b, self.reserve_a
        raise ValueError(f"{input_symbol} is not in this pool")

    def _fee_rate(self, amount_in: Decimal, reserve_in: Decimal) -> Decimal:
        raise NotImplementedError

    def quote(self, input_symbol: str, amount_in: Decimal) -> Quote:
        token_out, reserve_in, reserve_out = self._sides(input_symbol)
        with localcontext(_SWAP_CONTEXT):
            rate = self._fee_rate(amount_in, reserve_in)
            fee = amount_in * rate
            in_after_fee = amount_in - fee
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
            fee_bps=int((rate * BPS).to_integral_value(ROUND_HALF_UP)),
            price_impact_bps=impact,
            fee=fee.normalize(_FEE_CONTEXT),
        )

    def apply(self, input_symbol: str, amount_in: Decimal, amount_out: Decimal) -> None:
        """Move the reserves by an executed swap; the fee stays in the pool."""
        if input_symbol == self.token_a.symbol:
            self.reserve_a += amount_in
            self.reserve_b -= amount_out
        else:
            self.reserve_b += amount_in
            self.reserve_a -= amount_out

    def shift_price(self, factor: Decimal) -> None:
        """Multiply the price of token_a (in token_b) by `factor`, keeping k about the same.

        This stands for trades elsewhere in the market; the reserves stay whole base
        units, rounded down.
        """
        with localcontext(_WALK_CONTEXT):
            root = factor.sqrt()
            self.reserve_a = self.token_a.round_down(self.reserve_a / root)
            self.reserve_b = self.token_b.round_down(self.reserve_b * root)

    @property
    def price_a_in_b(self) -> Decimal:
        return price_of(self.reserve_a, self.reserve_b)


@attrs.define
class ConstantProductPool(_CurvePool):
    """An x*y=k pool with a fixed fee taken from the input, as Raydium's AMM does."""

    fee_bps: int = 25

    def _fee_rate(self, amount_in: Decimal, reserve_in: Decimal) -> Decimal:
        return Decimal(self.fee_bps) / BPS


@attrs.define
class DynamicFeePool(_CurvePool):
    """Meteora-style dynamic fee: a low base fee that rises with the trade's share of the pool.

    The fee rate is base + variable_factor * amount_in / (reserve_in + amount_in), capped
    at max_fee_bps. Small trades pay little; large ones pay for the volatility they cause.
    A variable factor below 0.45 keeps the output growing with the input (the input net
    of the fee still grows), which the tests check.
    """

    base_fee_bps: int = 10
    max_fee_bps: int = 100
    variable_factor: Decimal = Decimal("0.3")

    def _fee_rate(self, amount_in: Decimal, reserve_in: Decimal) -> Decimal:
        variable = self.variable_factor * amount_in / (reserve_in + amount_in)
        return min(Decimal(self.base_fee_bps) / BPS + variable, Decimal(self.max_fee_bps) / BPS)
