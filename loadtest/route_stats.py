"""What the router chooses over many seeded random orders, and what that gains.

Runs `--orders` random orders (pairs among the traded tokens, sizes log-uniform from $10
to $1M) through the real Router over the simulated Raydium and Meteora, with no delays
and no failures. Each chosen route is then executed on the simulated market, so the
reserves move as they would, and the seeded price walk takes one step per order. The
chain is kept in memory: no database is needed.

Prints each DEX's share of wins, how many orders used a split or a two-hop route, and the
average improvement of the chosen route over always using one DEX, then one JSON object
as the last line.

    python loadtest/route_stats.py --orders 1000 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import uuid
from collections import Counter
from decimal import Decimal

from order_engine.chain.ledger import SimulatedChain
from order_engine.chain.market import (
    DEXES,
    SimulatedMarket,
    meteora_pools,
    raydium_pools,
    simulated_venues,
)
from order_engine.routing.router import DIRECT, SPLIT, TWO_HOP, Route, Router, min_amount_out
from order_engine.routing.tokens import TOKENS
from order_engine.routing.venues import SwapReceipt, SwapTransaction, transaction_signature

# Rough dollar prices, only to draw order sizes that mean the same across tokens.
USD_PRICE = {
    "SOL": 150.0,
    "USDC": 1.0,
    "USDT": 1.0,
    "BONK": 0.0000075,
    "JUP": 0.8,
    "RAY": 2.0,
    "WIF": 1.8,
    "ORCA": 3.0,
    "PYTH": 0.4,
    "JTO": 2.5,
}
SLIPPAGE_BPS = 50


class MemoryChain(SimulatedChain):
    """The chain's ledger in a dict: what the Postgres table does, for one process."""

    def __init__(self) -> None:
        self._swaps: dict[str, SwapReceipt] = {}

    async def find(self, signature: str) -> SwapReceipt | None:
        return self._swaps.get(signature)

    async def settle(
        self, tx: SwapTransaction, amount_out: Decimal, executed_price: Decimal
    ) -> tuple[SwapReceipt, bool]:
        receipt = SwapReceipt(tx.signature, tx.order_id, tx.dex, amount_out, executed_price)
        self._swaps[tx.signature] = receipt
        return receipt, True


def credit(route: Route) -> dict[str, float]:
    """How much of the order's win goes to each DEX: all of it for a direct route, by
    the share of the input for a split, half to each hop's DEX for a path."""
    if route.kind == TWO_HOP:
        shares: dict[str, float] = {}
        for q in route.legs:
            shares[q.dex] = shares.get(q.dex, 0.0) + 0.5
        return shares
    total = route.input_amount
    return {q.dex: float(q.input_amount / total) for q in route.legs}


async def run(orders: int, seed: int, volatility_bps: float) -> dict[str, object]:
    rng = random.Random(seed)
    market = SimulatedMarket(
        raydium_pools() + meteora_pools(), seed=seed, volatility_bps=volatility_bps
    )
    chain = MemoryChain()
    venues = simulated_venues(
        chain, quote_delay_s=0, execution_delay_s=0, failure_rate=0, seed=seed, market=market
    )
    by_name = {v.name: v for v in venues}
    router = Router(venues, quote_timeout_s=5)
    symbols = sorted(USD_PRICE)
    pooled = sorted({(p.token_a.symbol, p.token_b.symbol) for p in market.pools()})

    wins: dict[str, float] = dict.fromkeys(DEXES, 0.0)
    kinds: Counter[str] = Counter()
    # Per single-DEX policy: improvement in bps of each order it could have filled.
    gains: dict[str, list[float]] = {dex: [] for dex in (*DEXES, "best single DEX")}
    unfillable: Counter[str] = Counter()
    failed = 0
    for n in range(orders):
        market.walk()
        # Mostly pairs some pool trades directly, as most real orders are; a fifth of
        # them any pair at all, which only a path can fill.
        if rng.random() < 0.8:
            src, dst = rng.sample(rng.choice(pooled), 2)
        else:
            src, dst = rng.sample(symbols, 2)
        usd = 10 ** rng.uniform(1, 6)
        token = TOKENS[src]
        amount = token.round_down(Decimal(usd / USD_PRICE[src]))
        decision = await router.route(token, TOKENS[dst], amount)
        route = decision.route
        kinds[route.kind] += 1
        for dex, share in credit(route).items():
            wins[dex] += share
        direct = {q.dex: q.amount_out for q in decision.quotes}
        for dex in DEXES:
            if dex in direct:
                gains[dex].append(float(route.amount_out / direct[dex] - 1) * 10_000)
            else:
                unfillable[dex] += 1
        if direct:
            best = max(direct.values())
            gains["best single DEX"].append(float(route.amount_out / best - 1) * 10_000)
        else:
            unfillable["best single DEX"] += 1

        order_id = uuid.UUID(int=rng.getrandbits(128))
        minimum = min_amount_out(route.amount_out, SLIPPAGE_BPS, TOKENS[dst])
        legs = route.swap_legs()
        tx = SwapTransaction(
            signature=transaction_signature(order_id, route.dex, amount, minimum, n),
            order_id=order_id,
            dex=route.dex,
            input_token=src,
            output_token=dst,
            input_amount=amount,
            min_amount_out=minimum,
            legs=legs,
        )
        try:
            await by_name[legs[0].dex if legs else route.dex].execute(tx)
        except Exception:
            failed += 1

    def mean(values: list[float]) -> float:
        return round(statistics.fmean(values), 2) if values else math.nan

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 2) if values else math.nan

    return {
        "orders": orders,
        "seed": seed,
        "winsShare": {k: round(v / orders, 4) for k, v in wins.items()},
        "routes": {k: kinds.get(k, 0) for k in (DIRECT, SPLIT, TWO_HOP)},
        "avgImprovementBps": {k: mean(v) for k, v in gains.items()},
        "medianImprovementBps": {k: median(v) for k, v in gains.items()},
        "ordersASingleDexCouldNotFill": dict(unfillable),
        "swapsFailed": failed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--volatility-bps", type=float, default=10.0)
    args = parser.parse_args()
    stats = await run(args.orders, args.seed, args.volatility_bps)
    shares = stats["winsShare"]
    assert isinstance(shares, dict)
    print(f"{stats['orders']} orders, seed {stats['seed']}")
    for name, share in shares.items():
        print(f"  share of wins, {name:8}: {share:.1%}")
    print(f"  routes: {stats['routes']}")
    print(f"  improvement of the chosen route, mean bps: {stats['avgImprovementBps']}")
    print(f"  improvement of the chosen route, median bps: {stats['medianImprovementBps']}")
    print(f"  orders a single DEX could not fill: {stats['ordersASingleDexCouldNotFill']}")
    print(f"  swaps that failed: {stats['swapsFailed']}")
    print(json.dumps(stats))


if __name__ == "__main__":
    asyncio.run(main())
