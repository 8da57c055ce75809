"""Raydium and Meteora, simulated: seeded pools, delays and failures from the settings."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from decimal import Decimal

from order_engine.routing.chain import SimulatedChain
from order_engine.routing.pools import ConstantProductPool, Quote, price_of
from order_engine.routing.tokens import TOKENS, Token
from order_engine.routing.venues import (
    NoPool,
    SlippageExceeded,
    SwapReceipt,
    SwapTransaction,
    VenueUnavailable,
)


class SimulatedVenue:
    """A DEX whose pools live in memory and whose settled swaps go to the chain table."""

    def __init__(
        self,
        name: str,
        pools: Iterable[ConstantProductPool],
        chain: SimulatedChain,
        *,
        quote_delay_s: float,
        execution_delay_s: float,
        failure_rate: float,
        rng: random.Random,
    ) -> None:
        self._name = name
        self._pools = {frozenset({p.token_a.symbol, p.token_b.symbol}): p for p in pools}
        # Quoting, checking and moving a pool's reserves must not interleave with another
        # swap on the same pool, and each step below awaits the database.
        self._locks = {pair: asyncio.Lock() for pair in self._pools}
        self._chain = chain
        self._quote_delay_s = quote_delay_s
        self._execution_delay_s = execution_delay_s
        self._failure_rate = failure_rate
        self._rng = rng

    @property
    def name(self) -> str:
        return self._name

    def _pool(self, input_symbol: str, output_symbol: str) -> ConstantProductPool:
        pool = self._pools.get(frozenset({input_symbol, output_symbol}))
        if pool is None:
            raise NoPool(f"{self._name} has no {input_symbol}/{output_symbol} pool")
        return pool

    def _maybe_fail(self, what: str) -> None:
        if self._rng.random() < self._failure_rate:
            raise VenueUnavailable(f"{self._name}: {what} failed (simulated network error)")

    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        pool = self._pool(input_token.symbol, output_token.symbol)
        await asyncio.sleep(self._quote_delay_s)
        return pool.quote(input_token.symbol, amount)

    async def execute(self, tx: SwapTransaction) -> SwapReceipt:
        pool = self._pool(tx.input_token, tx.output_token)
        await asyncio.sleep(self._execution_delay_s)
        self._maybe_fail("transaction")
        async with self._locks[frozenset({tx.input_token, tx.output_token})]:
            settled = await self._chain.find(tx.signature)
            if settled is not None:
                return settled
            amount_out = pool.quote(tx.input_token, tx.input_amount).amount_out
            if amount_out < tx.min_amount_out:
                raise SlippageExceeded(amount_out, tx.min_amount_out)
            receipt, fresh = await self._chain.settle(
                tx, amount_out, price_of(tx.input_amount, amount_out)
            )
            if fresh:
                pool.apply(tx.input_token, tx.input_amount, amount_out)
            return receipt

    async def find_swap(self, signature: str) -> SwapReceipt | None:
        return await self._chain.find(signature)


def _pool(
    dex: str, a: str, b: str, reserve_a: str, reserve_b: str, fee_bps: int
) -> ConstantProductPool:
    return ConstantProductPool(
        dex, TOKENS[a], TOKENS[b], Decimal(reserve_a), Decimal(reserve_b), fee_bps
    )


def raydium_pools() -> list[ConstantProductPool]:
    """Deep constant-product pools at a 0.25% fee: they win the large trades."""
    return [
        _pool("raydium", "SOL", "USDC", "200000", "30000000", 25),
        _pool("raydium", "SOL", "USDT", "80000", "12000000", 25),
        _pool("raydium", "USDC", "USDT", "5000000", "5000000", 25),
        _pool("raydium", "BONK", "SOL", "2000000000000", "100000", 25),
        _pool("raydium", "RAY", "USDC", "3000000", "6000000", 25),
        _pool("raydium", "WIF", "SOL", "5000000", "60000", 25),
    ]


def meteora_pools() -> list[ConstantProductPool]:
    """Shallower pools at a lower fee and slightly different prices: they win small trades."""
    return [
        _pool("meteora", "SOL", "USDC", "30000", "4506000", 15),
        _pool("meteora", "SOL", "USDT", "20000", "3001000", 15),
        _pool("meteora", "USDC", "USDT", "800000", "800200", 10),
        _pool("meteora", "JUP", "USDC", "4000000", "3200000", 20),
        _pool("meteora", "WIF", "SOL", "1000000", "12050", 20),
    ]


def simulated_venues(
    chain: SimulatedChain,
    *,
    quote_delay_s: float,
    execution_delay_s: float,
    failure_rate: float,
    seed: int | None,
) -> list[SimulatedVenue]:
    """Raydium and Meteora over fresh pools; a seed makes each venue's failures repeatable."""
    return [
        SimulatedVenue(
            name,
            pools,
            chain,
            quote_delay_s=quote_delay_s,
            execution_delay_s=execution_delay_s,
            failure_rate=failure_rate,
            rng=random.Random(f"{seed}:{name}") if seed is not None else random.Random(),
        )
        for name, pools in (("raydium", raydium_pools()), ("meteora", meteora_pools()))
    ]
