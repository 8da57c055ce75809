"""The supported tokens: symbol, mint address and decimals."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal

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

    def round_up(self, amount: Decimal) -> Decimal:
        """Round a least acceptable amount: up to whole base units, so it is never less."""
        return amount.quantize(self.unit, rounding=ROUND_UP)


# SOL trades as wrapped SOL, whose mint this is.
# Orders name it SOL: the engine wraps native SOL before the swap and unwraps it after.
NATIVE_SOL = "SOL"
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
        Token("ORCA", "orcaEKTdK7LKz57vaAYr9QeNsVEPfiu6QeMU1kektZE", 6),
        Token("PYTH", "HZ1JovNiVvGrGNiiYvEozEVgZ58xaU3RKwX8eACQBCt3", 6),
        Token("JTO", "jtojtomepa8beP8AuQc6eXt5FriJwfFMwQx2v2f9mCL", 9),
        # No pool trades these at start: they are launched later, for sniper orders.
        Token("POPCAT", "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr", 9),
        Token("MEW", "MEW1gQWJ3nEXg2qgERiKu7FAFj79PHvQVREQUzScPP5", 5),
    )
}
