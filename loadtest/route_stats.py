"""What the router chooses over many seeded random orders, and what that gains.

Runs `--orders` random orders (pairs among the traded tokens, sizes log-uniform from $10
to $1M) through the real Router over the simulated Raydium and Meteora, with no delays
and no failures. Each chosen route is then executed on the simulated market, so the
reserves move as they would, and the seeded price walk takes one step per order. The
chain's market is kept in memory: no database is needed.

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

from order_engine.chain.market import DEXES, Market, genesis_pools, listed_pools
from order_engine.chain.model import TxStatus, build_transaction
from order_engine.chain.slots import apply_transaction, walk_market
from order_engine.chain.venues import chain_venues
from order_engine.domain.routes import DIRECT, SPLIT, TWO_HOP, Route
from order_engine.routing.router import Router, min_amount_out
from order_engine.routing.tokens import TOKENS

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
    market = Market(listed_pools(genesis_pools()))
    router = Router(chain_venues(lambda: market, quote_delay_s=0), quote_timeout_s=5)
    symbols = sorted(USD_PRICE)
    pooled = sorted({(i.pool.token_a.symbol, i.pool.token_b.symbol) for i in market.listed()})

    wins: dict[str, float] = dict.fromkeys(DEXES, 0.0)
    kinds: Counter[str] = Counter()
    # Per single-DEX policy: improvement in bps of each order it could have filled.
    gains: dict[str, list[float]] = {dex: [] for dex in (*DEXES, "best single DEX")}
    unfillable: Counter[str] = Counter()
    failed = 0
    for n in range(orders):
        walk_market(market, seed=seed, slot=n, volatility=volatility_bps / 10_000)
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
        tx = build_transaction(
            order_id, 1, route.dex, src, dst, amount, route.swap_legs(), minimum, n
        )
        outcome, _ = apply_transaction(
            market, tx, seed=seed, failure_rate=0.0, already_landed=False
        )
        if outcome.status is not TxStatus.LANDED:
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
