"""What Postgres alone can do: the SQL that one order costs, with nothing else around it.

One order of the engine (a direct route) runs, in this order: the insert of the order
and its first event; the worker's advisory lock on the order; the read of the order;
the transitions to routing, building and submitted (each one UPDATE with its event
INSERT); sending the transaction to the chain (one INSERT) and the slot's update of its
row (one UPDATE here; a slot updates all of its transactions in one statement); the
transition to confirmed; the unlock. This script runs those statements, through the
engine's own store and chain classes, on an asyncpg pool of the engine's default size,
for `--orders` orders with `--concurrency` of them at once; no HTTP, no Redis, no
routing, no WebSockets. The engine's throughput divided by this one
is the share of Postgres's capacity the engine achieves.

    python loadtest/baseline_sql.py --database-url postgresql://postgres@127.0.0.1:5432/oe_bench \\
        --orders 5000 --concurrency 50

The database is created and migrated if needed. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
import uuid
from decimal import Decimal

import asyncpg
import attrs

from order_engine.chain.ledger import Ledger
from order_engine.chain.market import genesis_pools
from order_engine.chain.model import Transaction
from order_engine.domain.events import Built, Confirmed, Routed, Submitted
from order_engine.domain.orders import Changes, NewOrder, OrderStatus, OrderType
from order_engine.domain.routes import DIRECT, Quote, Route, SwapLeg
from order_engine.engine.locks import order_lock_key
from order_engine.migrations import migrate
from order_engine.store.orders import OrderStore, create_pool

WALLET = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
STATEMENTS_PER_ORDER = 10
QUOTE = Quote("meteora", "SOL", "USDC", Decimal("0.1"), Decimal("14.98"), 10, Decimal("0.03"))
ROUTE = Route(DIRECT, (QUOTE,), QUOTE.amount_out)
LAND = """
UPDATE chain_transactions SET status = 'landed', amount_out = 14.97, executed_price = 149.7,
    slot = 1
WHERE signature = $1
"""


async def advisory(pool: asyncpg.Pool, sql: str, order_id: uuid.UUID) -> None:
    # The engine holds its order locks on one connection of their own; the statements
    # cost Postgres the same on a pooled one.
    async with pool.acquire() as conn:
        await conn.fetchval(sql, order_lock_key(order_id))


async def one_order(store: OrderStore, ledger: Ledger, pool: asyncpg.Pool) -> float:
    """Run one order's statements; return its milliseconds."""
    started = time.perf_counter()
    new = NewOrder(
        type=OrderType.MARKET,
        user_wallet=WALLET,
        input_token="SOL",
        output_token="USDC",
        input_amount=Decimal("0.1"),
        slippage_bps=100,
        limit_price=None,
        expires_at=None,
    )
    order, _ = await store.insert_order(new, queued=True)
    await advisory(pool, "SELECT pg_try_advisory_lock($1)", order.id)
    picked = await store.get_order(order.id)
    assert picked is not None
    await store.transition(
        order.id,
        OrderStatus.ROUTING,
        Routed(quotes=(QUOTE, attrs.evolve(QUOTE, dex="raydium")), route=ROUTE),
        Changes(dex="meteora", quoted_amount_out=Decimal("14.98"), route=ROUTE, attempts=1),
    )
    signature = uuid.uuid4().hex
    await store.transition(
        order.id,
        OrderStatus.BUILDING,
        Built(dex="meteora", min_amount_out=Decimal("14.83")),
        Changes(min_amount_out=Decimal("14.83"), tx_hash=signature, tx_slot=0),
    )
    await store.transition(order.id, OrderStatus.SUBMITTED, Submitted(signature))
    tx = Transaction(
        signature=signature,
        order_id=order.id,
        attempt=1,
        dex="meteora",
        input_token="SOL",
        output_token="USDC",
        input_amount=Decimal("0.1"),
        min_amount_out=Decimal("14.83"),
        legs=(SwapLeg("meteora", "SOL", "USDC", Decimal("0.1")),),
        built_slot=0,
    )
    await ledger.send(tx, expiry_slots=1_000_000)
    async with pool.acquire() as conn:
        await conn.execute(LAND, signature)
    await store.transition(
        order.id,
        OrderStatus.CONFIRMED,
        Confirmed(signature, Decimal("14.97"), Decimal("149.7")),
        Changes(amount_out=Decimal("14.97"), executed_price=Decimal("149.7")),
    )
    await advisory(pool, "SELECT pg_advisory_unlock($1)", order.id)
    return (time.perf_counter() - started) * 1000


async def run(args: argparse.Namespace) -> dict[str, object]:
    await migrate(args.database_url)
    pool = await create_pool(
        args.database_url, min_size=args.pool_size, max_size=args.pool_size, command_timeout=30
    )
    try:
        store, ledger = OrderStore(pool), Ledger(pool)
        await ledger.genesis(genesis_pools(), seed=1)
        remaining = args.orders
        durations: list[float] = []

        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                durations.append(await one_order(store, ledger, pool))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    ordered = sorted(durations)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 1)

    return {
        "orders": len(durations),
        "concurrency": args.concurrency,
        "pool_size": args.pool_size,
        "statements_per_order": STATEMENTS_PER_ORDER,
        "orders_per_s": round(len(durations) / elapsed, 1),
        "statements_per_s": round(len(durations) * STATEMENTS_PER_ORDER / elapsed, 1),
        "order_ms": {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": rank(1.0)},
        "duration_s": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=False)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--pool-size", type=int, default=20, help="the engine's DB_POOL_MAX")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
