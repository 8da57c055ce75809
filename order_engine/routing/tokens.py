"""The supported tokens: symbol, mint address and decimals."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import attrs


@attrs.frozen
class Token:
    symbol: str
    mint: str
    decimals: int

    @property
    def unit(self) -> Decimal:
        """The smallest amount the chain can hold of this token."""
        return Decimal(1).scaleb(-self.decimals)

    def round_down(self, amount: Decimal) -> Decimal:
        """Round as a chain pays out: down to whole base units, never up."""
        return amount.quantize(self.unit, rounding=ROUND_DOWN)


# SOL trades as wrapped SOL, whose mint this is.
TOKENS: dict[str, Token] = {
    t.symbol: t
    for t in (
        Token("SOL", "So11111111111111111111111111111111111111112", 9),
        Token("USDC", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6),
        Token("USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6),
        Token("BONK", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5),
        Token("JUP", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6),
        Token("RAY", "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R", 6),
        Token("WIF", "EKpQGSJtjMFqKZ9KQanSqYXRcF8fBopzLHYxdM65zcjm", 6),
    )
}
