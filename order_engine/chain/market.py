"""The simulated market: every pool of both DEXs, the swaps, the price walk and launches.

Pure: no I/O, no clock, no randomness of its own (callers pass seeded generators). The
slot producer runs one slot's work on a Market loaded from the chain's tables; each
engine process keeps a Market as its view of the chain, for quotes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from decimal import Decimal

import attrs

from order_engine.domain.errors import PoolExists
from order_engine.domain.routes import SwapLeg, price_of
from order_engine.routing.pools import ConstantProductPool, DynamicFeePool, Pool
from order_engine.routing.tokens import TOKENS
from order_engine.routing.venues import NoPool

DEXES = ("raydium", "meteora")
RAYDIUM_FEE_BPS = 25
# How strongly the walk pulls a pool's price back toward where it started, per step:
# without it two pools of a pair drift apart for ever, which no arbitrageur would allow.
_MEAN_REVERSION = 0.02

PoolKey = tuple[str, frozenset[str]]


def pool_key(dex: str, a: str, b: str) -> PoolKey:
    return dex, frozenset({a, b})


@attrs.define
class ListedPool:
    """A pool as the chain lists it: its id, and the price its walk is pulled back to."""

    id: int
    pool: Pool
    start_price: Decimal

    @property
    def key(self) -> PoolKey:
        return pool_key(self.pool.dex, self.pool.token_a.symbol, self.pool.token_b.symbol)


# (pool, input symbol, amount in, amount out) of one leg of a swap.
Move = tuple[ListedPool, str, Decimal, Decimal]


class Market:
    def __init__(self, pools: Iterable[ListedPool] = ()) -> None:
        self._by_key: dict[PoolKey, ListedPool] = {}
        self._by_id: dict[int, ListedPool] = {}
        for listed in pools:
            self.add(listed)

    def add(self, listed: ListedPool) -> None:
        if listed.key in self._by_key:
            pool = listed.pool
            raise PoolExists(
                f"{pool.dex} already has a {pool.token_a.symbol}/{pool.token_b.symbol} pool"
            )
        self._by_key[listed.key] = listed
        self._by_id[listed.id] = listed

    def listed(self) -> list[ListedPool]:
        """Every pool, in a fixed order (by id), so that seeded steps are repeatable."""
        return [self._by_id[i] for i in sorted(self._by_id)]

    def by_id(self, pool_id: int) -> ListedPool | None:
        return self._by_id.get(pool_id)

    def pool(self, dex: str, input_symbol: str, output_symbol: str) -> Pool:
        listed = self._by_key.get(pool_key(dex, input_symbol, output_symbol))
        if listed is None:
            raise NoPool(f"{dex} has no {input_symbol}/{output_symbol} pool")
        return listed.pool

    def traded_tokens(self) -> set[str]:
        return {symbol for key in self._by_key for symbol in key[1]}

    def dry_run(self, legs: Sequence[SwapLeg], output_token: str) -> tuple[list[Move], Decimal]:
        """What each leg would pay now, and the transaction's output in `output_token`. A
        leg with no input amount spends all that the legs before it paid out in its input
        token (the second hop of a path). Raises NoPool for a pool the market lacks."""
        held: dict[str, Decimal] = {}
        moves: list[Move] = []
        for leg in legs:
            listed = self._by_key.get(pool_key(leg.dex, leg.input_token, leg.output_token))
            if listed is None:
                raise NoPool(f"{leg.dex} has no {leg.input_token}/{leg.output_token} pool")
            amount_in = (
                leg.input_amount
                if leg.input_amount is not None
                else held.pop(leg.input_token, Decimal(0))
            )
            out = listed.pool.quote(leg.input_token, amount_in).amount_out
            moves.append((listed, leg.input_token, amount_in, out))
            held[leg.output_token] = held.get(leg.output_token, Decimal(0)) + out
        return moves, held.get(output_token, Decimal(0))


def apply_moves(moves: Iterable[Move]) -> None:
    for listed, symbol, amount_in, amount_out in moves:
        listed.pool.apply(symbol, amount_in, amount_out)


def walk(listed: ListedPool, noise: float) -> None:
    """One step of the pool's price walk: a log-normal move by `noise` (a standard normal
    draw scaled by the volatility), pulled back toward the starting price."""
    pool = listed.pool
    drift = math.log(float(listed.start_price / pool.price_a_in_b))
    pool.shift_price(Decimal(math.exp(noise + _MEAN_REVERSION * drift)))


def pick_launch(market: Market, rng: random.Random) -> Pool | None:
    """A seeded new pool against SOL for a token that no pool trades yet; None if every
    token is traded."""
    traded = market.traded_tokens()
    waiting = sorted(s for s in TOKENS if s not in traded)
    if not waiting:
        return None
    symbol = rng.choice(waiting)
    dex = rng.choice(DEXES)
    reserve_sol = Decimal(rng.randrange(50, 500))
    reserve_token = Decimal(rng.randrange(10**6, 10**8))
    return new_pool(dex, symbol, "SOL", reserve_token, reserve_sol)


def new_pool(dex: str, a: str, b: str, reserve_a: Decimal | str, reserve_b: Decimal | str) -> Pool:
    """A pool of the kind `dex` runs: constant product on Raydium, dynamic fee on Meteora."""
    token_a, token_b = TOKENS[a], TOKENS[b]
    ra = token_a.round_down(Decimal(reserve_a))
    rb = token_b.round_down(Decimal(reserve_b))
    if dex == "raydium":
        return ConstantProductPool(dex, token_a, token_b, ra, rb, RAYDIUM_FEE_BPS)
    if dex == "meteora":
        return DynamicFeePool(dex, token_a, token_b, ra, rb)
    raise ValueError(f"unknown dex {dex}")


def listed_pools(pools: Iterable[Pool]) -> list[ListedPool]:
    """Pools numbered from 1 and anchored at their opening price, as genesis lists them."""
    return [
        ListedPool(i, pool, price_of(pool.reserve_a, pool.reserve_b))
        for i, pool in enumerate(pools, start=1)
    ]


# The opening reserves of every pool agree on one set of prices (SOL 150, RAY 2, JUP 0.8,
# WIF 1.8, BONK 0.0000075, ORCA 3, PYTH 0.4, JTO 2.5 USDC), so that no path through a hub
# is a free arbitrage at the start; the price walk and the swaps then pull them apart.


def raydium_pools() -> list[Pool]:
    """Deep constant-product pools at a 0.25% fee: they win the large trades."""
    return [
        new_pool("raydium", "SOL", "USDC", "200000", "30000000"),
        new_pool("raydium", "SOL", "USDT", "80000", "12000000"),
        new_pool("raydium", "USDC", "USDT", "5000000", "5000000"),
        new_pool("raydium", "BONK", "SOL", "2000000000000", "100000"),
        new_pool("raydium", "RAY", "USDC", "3000000", "6000000"),
        new_pool("raydium", "RAY", "SOL", "750000", "10000"),
        new_pool("raydium", "WIF", "SOL", "5000000", "60000"),
        new_pool("raydium", "JUP", "SOL", "1500000", "8000"),
        new_pool("raydium", "ORCA", "USDC", "400000", "1200000"),
        new_pool("raydium", "PYTH", "USDC", "2000000", "800000"),
    ]


def meteora_pools() -> list[Pool]:
    """Shallower pools whose fee starts at 0.10% and rises with size: they win small
    trades, and the pairs where they are the deeper pool."""
    return [
        new_pool("meteora", "SOL", "USDC", "30000", "4500000"),
        new_pool("meteora", "SOL", "USDT", "20000", "3000000"),
        new_pool("meteora", "USDC", "USDT", "800000", "800000"),
        new_pool("meteora", "BONK", "USDC", "300000000000", "2250000"),
        new_pool("meteora", "JUP", "USDC", "4000000", "3200000"),
        new_pool("meteora", "WIF", "SOL", "1000000", "12000"),
        new_pool("meteora", "WIF", "USDC", "3000000", "5400000"),
        new_pool("meteora", "JTO", "USDC", "600000", "1500000"),
        new_pool("meteora", "JTO", "SOL", "300000", "5000"),
        new_pool("meteora", "PYTH", "SOL", "1500000", "4000"),
    ]


def genesis_pools() -> list[Pool]:
    return raydium_pools() + meteora_pools()
