"""Raydium and Meteora, simulated: seeded pools, delays and failures from the settings.

All pools of both DEXs live in one SimulatedMarket, so that a split or two-hop route
(one transaction touching pools on both DEXs, as an aggregator's is) settles all of its
legs or none of them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from decimal import Decimal

from order_engine.chain.ledger import SimulatedChain
from order_engine.domain.errors import PoolExists
from order_engine.routing.pools import ConstantProductPool, DynamicFeePool, Pool, Quote, price_of
from order_engine.routing.tokens import TOKENS, Token
from order_engine.routing.venues import (
    NoPool,
    SlippageExceeded,
    SwapLeg,
    SwapReceipt,
    SwapTransaction,
    VenueUnavailable,
)

log = logging.getLogger(__name__)

DEXES = ("raydium", "meteora")
RAYDIUM_FEE_BPS = 25
# How strongly the walk pulls a pool's price back toward where it started, per step:
# without it two pools of a pair drift apart for ever, which no arbitrageur would allow.
_MEAN_REVERSION = 0.02

PoolKey = tuple[str, frozenset[str]]


def _key(dex: str, a: str, b: str) -> PoolKey:
    return dex, frozenset({a, b})


class SimulatedMarket:
    """Every simulated pool, the locks that serialise swaps on each, and the price walk."""

    def __init__(
        self, pools: Iterable[Pool], *, seed: int | None, volatility_bps: float = 0.0
    ) -> None:
        self._pools: dict[PoolKey, Pool] = {}
        self._locks: dict[PoolKey, asyncio.Lock] = {}
        self._start_price: dict[PoolKey, Decimal] = {}
        self._walk_rng = random.Random(f"{seed}:walk") if seed is not None else random.Random()
        self._launch_rng = random.Random(f"{seed}:launch") if seed is not None else random.Random()
        self._volatility = volatility_bps / 10_000
        for pool in pools:
            self.add_pool(pool)

    def add_pool(self, pool: Pool) -> None:
        key = _key(pool.dex, pool.token_a.symbol, pool.token_b.symbol)
        if key in self._pools:
            raise PoolExists(
                f"{pool.dex} already has a {pool.token_a.symbol}/{pool.token_b.symbol} pool"
            )
        self._pools[key] = pool
        self._locks[key] = asyncio.Lock()
        self._start_price[key] = price_of(pool.reserve_a, pool.reserve_b)

    def pools(self) -> list[Pool]:
        return list(self._pools.values())

    def pool(self, dex: str, input_symbol: str, output_symbol: str) -> Pool:
        pool = self._pools.get(_key(dex, input_symbol, output_symbol))
        if pool is None:
            raise NoPool(f"{dex} has no {input_symbol}/{output_symbol} pool")
        return pool

    def walk(self) -> None:
        """One step of each pool's seeded random walk: a log-normal move of its price."""
        for key in sorted(self._pools, key=lambda k: (k[0], sorted(k[1]))):
            pool = self._pools[key]
            noise = self._walk_rng.gauss(0.0, self._volatility)
            # A pool in the middle of a swap keeps its reserves until the swap is settled;
            # its noise is still drawn, so the seed gives the same walk whatever the timing.
            if self._locks[key].locked():
                continue
            drift = math.log(float(self._start_price[key] / pool.price_a_in_b))
            pool.shift_price(Decimal(math.exp(noise + _MEAN_REVERSION * drift)))

    def launch_random_pool(self) -> Pool | None:
        """Open a seeded pool for a token that no pool trades yet; None if there is none."""
        traded = {symbol for key in self._pools for symbol in key[1]}
        waiting = sorted(s for s in TOKENS if s not in traded)
        if not waiting:
            return None
        symbol = self._launch_rng.choice(waiting)
        dex = self._launch_rng.choice(DEXES)
        reserve_sol = Decimal(self._launch_rng.randrange(50, 500))
        reserve_token = Decimal(self._launch_rng.randrange(10**6, 10**8))
        pool = new_pool(dex, symbol, "SOL", reserve_token, reserve_sol)
        self.add_pool(pool)
        log.info("launched %s %s/SOL pool: %s and %s SOL", dex, symbol, reserve_token, reserve_sol)
        return pool

    async def execute(self, tx: SwapTransaction, chain: SimulatedChain) -> SwapReceipt:
        """Run every leg of `tx` on the current reserves, or none if the output is short."""
        legs = tx.legs or (SwapLeg(tx.dex, tx.input_token, tx.output_token, tx.input_amount),)
        keys = sorted(
            {_key(leg.dex, leg.input_token, leg.output_token) for leg in legs},
            key=lambda k: (k[0], sorted(k[1])),
        )
        for key in keys:
            if key not in self._pools:
                raise NoPool(f"{key[0]} has no {'/'.join(sorted(key[1]))} pool")
        # Always taken in the same order, so that two routes over the same pools
        # cannot wait on each other.
        async with AsyncExitStack() as stack:
            for key in keys:
                await stack.enter_async_context(self._locks[key])
            settled = await chain.find(tx.signature)
            if settled is not None:
                return settled
            moves, amount_out = self._dry_run(legs, tx.output_token)
            if amount_out < tx.min_amount_out:
                raise SlippageExceeded(amount_out, tx.min_amount_out)
            receipt, fresh = await chain.settle(
                tx, amount_out, price_of(tx.input_amount, amount_out)
            )
            if fresh:
                for pool, symbol, amount_in, out in moves:
                    pool.apply(symbol, amount_in, out)
            return receipt

    def _dry_run(
        self, legs: Sequence[SwapLeg], output_token: str
    ) -> tuple[list[tuple[Pool, str, Decimal, Decimal]], Decimal]:
        """What each leg would pay now. A leg with no input amount spends all that the
        legs before it paid out in its input token (the second hop of a path)."""
        held: dict[str, Decimal] = {}
        moves: list[tuple[Pool, str, Decimal, Decimal]] = []
        for leg in legs:
            pool = self.pool(leg.dex, leg.input_token, leg.output_token)
            amount_in = (
                leg.input_amount
                if leg.input_amount is not None
                else held.pop(leg.input_token, Decimal(0))
            )
            out = pool.quote(leg.input_token, amount_in).amount_out
            moves.append((pool, leg.input_token, amount_in, out))
            held[leg.output_token] = held.get(leg.output_token, Decimal(0)) + out
        return moves, held.get(output_token, Decimal(0))


class SimulatedVenue:
    """One DEX's view of the market, with its latency and failures."""

    def __init__(
        self,
        name: str,
        market: SimulatedMarket,
        chain: SimulatedChain,
        *,
        quote_delay_s: float,
        execution_delay_s: float,
        failure_rate: float,
        rng: random.Random,
    ) -> None:
        self._name = name
        self._market = market
        self._chain = chain
        self.quote_delay_s = quote_delay_s
        self._execution_delay_s = execution_delay_s
        self._failure_rate = failure_rate
        self._rng = rng

    @property
    def name(self) -> str:
        return self._name

    def _maybe_fail(self, what: str) -> None:
        if self._rng.random() < self._failure_rate:
            raise VenueUnavailable(f"{self._name}: {what} failed (simulated network error)")

    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        pool = self._market.pool(self._name, input_token.symbol, output_token.symbol)
        await asyncio.sleep(self.quote_delay_s)
        return pool.quote(input_token.symbol, amount)

    async def execute(self, tx: SwapTransaction) -> SwapReceipt:
        await asyncio.sleep(self._execution_delay_s)
        self._maybe_fail("transaction")
        return await self._market.execute(tx, self._chain)

    async def find_swap(self, signature: str) -> SwapReceipt | None:
        return await self._chain.find(signature)


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


def simulated_venues(
    chain: SimulatedChain,
    *,
    quote_delay_s: float,
    execution_delay_s: float,
    failure_rate: float,
    seed: int | None,
    market: SimulatedMarket | None = None,
) -> list[SimulatedVenue]:
    """Raydium and Meteora over `market` (fresh pools by default); a seed makes each
    venue's failures repeatable."""
    market = market or SimulatedMarket(raydium_pools() + meteora_pools(), seed=seed)
    return [
        SimulatedVenue(
            name,
            market,
            chain,
            quote_delay_s=quote_delay_s,
            execution_delay_s=execution_delay_s,
            failure_rate=failure_rate,
            rng=random.Random(f"{seed}:{name}") if seed is not None else random.Random(),
        )
        for name in DEXES
    ]


async def run_market_clock(
    market: SimulatedMarket, *, walk_interval_s: float, launch_interval_s: float
) -> None:
    """Step the price walk and launch pools on their timers until cancelled; an interval
    of 0 turns its timer off."""

    async def every(interval_s: float, step: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                step()
            except Exception:
                # One bad step must not stop the market moving for the rest of the run.
                log.exception("market timer step failed")

    async with asyncio.TaskGroup() as timers:
        if walk_interval_s > 0:
            timers.create_task(every(walk_interval_s, market.walk))
        if launch_interval_s > 0:
            timers.create_task(every(launch_interval_s, market.launch_random_pool))
