"""How long the slot producer takes to close a slot, against how many transactions are
due in it.

For each size N, sends N transactions (alternating SOL -> USDC on Raydium and USDC ->
SOL on Meteora, so that every one lands) straight to the chain's table, then closes one
slot with the engine's own SlotProducer and times it: the slot's transaction (what the
producer records as `work_ms`) and the whole of it, the summary's publish on Redis
included. Each size is run `--repeat` times; the medians are printed, with the largest
slot that fits in `--slot-ms` by linear interpolation between the measured sizes.

    python loadtest/slot_bench.py --database-url postgresql://postgres@127.0.0.1:5432/oe_slots \\
        --redis-url redis://127.0.0.1:6379/0 --sizes 10 100 1000 2000 5000 --repeat 5

The database is created and migrated if needed, and its chain reset first. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from order_engine.chain.ledger import Ledger
from order_engine.chain.market import genesis_pools
from order_engine.chain.model import Transaction, build_transaction
from order_engine.chain.slots import SlotConfig, SlotProducer
from order_engine.domain.routes import SwapLeg
from order_engine.formats import exact_json
from order_engine.leader import Leadership, Role
from order_engine.migrations import migrate
from order_engine.store.orders import create_pool

RESET = """
TRUNCATE chain_transactions, chain_slots, chain_pools, chain_head RESTART IDENTITY
"""


def transactions(count: int, slot: int) -> list[Transaction]:
    txs = []
    for i in range(count):
        if i % 2 == 0:
            leg = SwapLeg("raydium", "SOL", "USDC", Decimal("0.1"))
        else:
            leg = SwapLeg("meteora", "USDC", "SOL", Decimal("15"))
        txs.append(
            build_transaction(
                uuid.uuid4(),
                1,
                leg.dex,
                leg.input_token,
                leg.output_token,
                leg.input_amount or Decimal(0),
                (leg,),
                Decimal(0),
                slot,
            )
        )
    return txs


async def send_all(pool: asyncpg.Pool, txs: list[Transaction]) -> None:
    async with pool.acquire() as conn:
        await conn.executemany(
            """
            INSERT INTO chain_transactions (signature, order_id, attempt, dex, input_token,
                output_token, input_amount, min_amount_out, legs, built_slot)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            """,
            [
                (
                    tx.signature,
                    tx.order_id,
                    tx.attempt,
                    tx.dex,
                    tx.input_token,
                    tx.output_token,
                    tx.input_amount,
                    tx.min_amount_out,
                    exact_json.unstructure(tx.legs),
                    tx.built_slot,
                )
                for tx in txs
            ],
        )


def fits(results: dict[int, float], budget_ms: float) -> int | None:
    """The largest size whose slot takes `budget_ms`, interpolated between the two
    measured sizes around it; the largest size measured if every one fits, None if none
    does."""
    sizes = sorted(results)
    for a, b in itertools.pairwise(sizes):
        if results[a] <= budget_ms < results[b]:
            return round(a + (b - a) * (budget_ms - results[a]) / (results[b] - results[a]))
    fitting = [s for s in sizes if results[s] <= budget_ms]
    return fitting[-1] if fitting else None


async def run(args: argparse.Namespace) -> dict[str, object]:
    await migrate(args.database_url)
    pool = await create_pool(args.database_url, min_size=2, max_size=4, command_timeout=60)
    redis = aioredis.Redis.from_url(args.redis_url)
    leadership = Leadership(args.database_url, Role.SLOT_PRODUCER, timeout_s=10)
    try:
        async with pool.acquire() as conn:
            await conn.execute(RESET)
        await Ledger(pool).genesis(genesis_pools(), seed=1)
        if not await leadership.try_lead():
            raise SystemExit("another slot producer leads this database's chain")
        producer = SlotProducer(
            pool,
            redis,
            "oe-slot-bench:chain",
            leadership,
            SlotConfig(execution_delay_s=0.0, expiry_slots=10**9, max_transactions=10**9),
            name="slot-bench",
            on_summary=lambda summary: None,
        )
        # One slot first, so that no measured one pays for preparing the statements.
        await send_all(pool, transactions(10, await Ledger(pool).head()))
        await producer.produce()
        work: dict[int, list[float]] = {}
        total: dict[int, list[float]] = {}
        for size in args.sizes:
            for _ in range(args.repeat):
                await send_all(pool, transactions(size, await Ledger(pool).head()))
                started = time.perf_counter()
                summary = await producer.produce()
                total.setdefault(size, []).append((time.perf_counter() - started) * 1000)
                assert len(summary.outcomes) == size, (size, len(summary.outcomes))
                async with pool.acquire() as conn:
                    work.setdefault(size, []).append(
                        await conn.fetchval(
                            "SELECT work_ms FROM chain_slots WHERE slot = $1", summary.slot
                        )
                    )
    finally:
        await leadership.close()
        await redis.aclose()
        await pool.close()
    medians = {size: round(statistics.median(ms), 1) for size, ms in total.items()}
    return {
        "repeat": args.repeat,
        "slot_total_ms_median": medians,
        "slot_work_ms_median": {s: round(statistics.median(ms), 1) for s, ms in work.items()},
        "per_transaction_ms": {s: round(medians[s] / s, 3) for s in medians},
        "largest_slot_within_ms": {args.slot_ms: fits(medians, args.slot_ms)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 2000, 5000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slot-ms", type=float, default=400.0)
    args = parser.parse_args()
    if not args.database_url or not args.redis_url:
        parser.error("--database-url and --redis-url (or DATABASE_URL, REDIS_URL) are needed")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
