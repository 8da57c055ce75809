"""Resting limit orders by the hundred thousand: the trigger index and the time to fire.

Puts `--orders` resting (`waiting`) limit orders over 20 pairs straight into the
database, each of its own wallet of a thousand, with limits far from the market. Then:

- **rebuild**: the watcher's rebuild from Postgres (what a process does when it takes
  the lead), `--repeat` times; the read alone, and all of it.
- **memory**: what the index holds (tracemalloc, after the rows read are freed).
- **check**: with N orders lowered under the market (`--cross`), one watcher pass over
  the whole index with the engine's TriggerWatcher, its firing replaced by putting the
  orders back so that every pass finds them again; `--passes` passes for each N. The
  check is the pass up to its last decision (catching up with Postgres, prices, the
  index's cut of each pair, the router's route for each candidate on the slot's prices).
- **fire** (`--fire`): for each N, a server (`python -m order_engine serve`, at
  LOG_LEVEL=WARNING, delays 0, the default 400 ms slots) over the same orders, of which
  N are RAY -> USDC at 2.5 with RAY trading at 2; once its index holds them all, a
  Meteora pool offering 3 launches through POST /api/dev/pools. From the close of the
  launch's slot to each order's `routing` and `confirmed` event (Postgres timestamps).

    python loadtest/resting_bench.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/oe_resting \\
        --redis-url redis://127.0.0.1:6379/0 --orders 100000 --cross 0 1 100 10000 \\
        --passes 30 --repeat 5 --fire 1 100 10000 --fire-runs 3

The database is created and migrated if needed, and emptied first. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import signal
import socket
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import attrs
import base58
import redis.asyncio as aioredis

from order_engine.chain.client import ChainClient
from order_engine.chain.ledger import Ledger
from order_engine.chain.market import Market, genesis_pools, listed_pools
from order_engine.chain.prices import best_price
from order_engine.chain.venues import chain_venues
from order_engine.domain.events import Accepted, Waiting
from order_engine.domain.orders import OrderType, RestingOrder
from order_engine.engine.triggers import TriggerWatcher
from order_engine.migrations import migrate
from order_engine.queue import OrderQueue
from order_engine.routing.router import Router
from order_engine.routing.tokens import TOKENS
from order_engine.store.orders import OrderStore, create_pool, store_data

PAIRS = [
    ("SOL", "USDC"), ("USDC", "SOL"), ("SOL", "USDT"), ("USDT", "SOL"), ("USDC", "USDT"),
    ("USDT", "USDC"), ("BONK", "SOL"), ("SOL", "BONK"), ("RAY", "USDC"), ("USDC", "RAY"),
    ("RAY", "SOL"), ("WIF", "SOL"), ("SOL", "WIF"), ("JUP", "SOL"), ("JUP", "USDC"),
    ("ORCA", "USDC"), ("PYTH", "USDC"), ("JTO", "USDC"), ("JTO", "SOL"), ("PYTH", "SOL"),
]  # fmt: skip
WALLETS = 1000
RAY_AT_3 = {"dex": "meteora", "tokenA": "RAY", "tokenB": "USDC", "reserveA": "100000",
            "reserveB": "300000"}  # fmt: skip
RESET = """
TRUNCATE orders, order_events, idempotency_keys, chain_transactions, chain_slots,
         chain_pools, chain_head RESTART IDENTITY
"""
ORDER_COLUMNS = [
    "id", "type", "status", "user_wallet", "input_token", "output_token", "input_amount",
    "slippage_bps", "limit_price", "expires_at", "queued_at", "last_seq",
]  # fmt: skip


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 (nearest rank) and max, rounded to 0.1."""
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]

    return {"p50": round(rank(0.5), 1), "p99": round(rank(0.99), 1), "max": round(ordered[-1], 1)}


def resting_orders(count: int, crossing: int, rng: random.Random) -> list[RestingOrder]:
    """`count` orders over PAIRS, about 10 USDC each, with limits 2 to 3 times the pair's
    price (out of reach); the first `crossing` are RAY -> USDC at 2.5, worth 0.1 USDC."""
    market = Market(listed_pools(genesis_pools()))
    deadline = datetime.now(UTC) + timedelta(days=1)
    orders = []
    for i in range(count):
        if i < crossing:
            pair, amount, limit = ("RAY", "USDC"), Decimal("0.05"), Decimal("2.5")
        else:
            pair = PAIRS[i % len(PAIRS)]
            price = best_price(market, *pair)
            usdc = 1 if pair[0] == "USDC" else best_price(market, pair[0], "USDC")
            assert price is not None
            assert usdc is not None
            amount = TOKENS[pair[0]].round_down(Decimal(10) / Decimal(usdc))
            limit = (price * Decimal(rng.uniform(2, 3))).quantize(Decimal("1e-12"))
        orders.append(
            RestingOrder(
                id=uuid.uuid4(),
                type=OrderType.LIMIT,
                input_token=pair[0],
                output_token=pair[1],
                input_amount=amount,
                limit_price=limit,
                expires_at=deadline,
                rest_slot=0,
            )
        )
    return orders


async def reset(pool: asyncpg.Pool, orders: list[RestingOrder]) -> None:
    """An empty chain at genesis and `orders` waiting, as the executor leaves them."""
    wallets = [base58.b58encode(random.randbytes(32)).decode() for _ in range(WALLETS)]
    async with pool.acquire() as conn:
        await conn.execute(RESET)
    await Ledger(pool).genesis(genesis_pools(), seed=1)
    now = datetime.now(UTC)
    accepted = json.dumps(store_data(Accepted()))
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "orders",
            columns=ORDER_COLUMNS,
            records=[
                (o.id, "limit", "waiting", wallets[i % WALLETS], o.input_token, o.output_token,
                 o.input_amount, 5000, o.limit_price, o.expires_at, now, 2)
                for i, o in enumerate(orders)
            ],
        )  # fmt: skip
        events = []
        for o in orders:
            waiting = Waiting(expires_at=o.expires_at, slot=0, limit_price=o.limit_price)
            events.append((o.id, 1, "pending", accepted))
            events.append((o.id, 2, "waiting", json.dumps(store_data(waiting))))
        # Not COPY: its binary format has no encoder for jsonb, whose codec is text.
        await conn.execute(
            "INSERT INTO order_events (order_id, seq, status, data) SELECT o, s, t, d::jsonb "
            "FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[]) AS u(o, s, t, d)",
            *map(list, zip(*events, strict=True)),
        )
        await conn.execute("ANALYZE orders")


class PassOnly(TriggerWatcher):
    """Decides like the engine's watcher, but puts what it would fire back, so that the
    same orders cross again at the next pass."""

    async def _fire_all(self, ready: Iterable[tuple[RestingOrder, Any]]) -> list[bool]:
        for order, _ in ready:
            self.index.put_back(order)
        return []


async def index_figures(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(1)
    pool = await create_pool(args.database_url, min_size=2, max_size=4, command_timeout=120)
    redis = aioredis.Redis.from_url(args.redis_url)
    try:
        orders = resting_orders(args.orders, 0, rng)
        await reset(pool, orders)
        ledger = Ledger(pool)
        chain = ChainClient(
            ledger, redis, "oe-resting-bench:chain", slot_s=0.4, execution_delay_s=0,
            expiry_slots=150,
        )  # fmt: skip
        await chain.reload()
        store = OrderStore(pool)
        router = Router(chain_venues(lambda: chain.market, quote_delay_s=0), quote_timeout_s=5)
        queue = OrderQueue(redis, redis, stream="oe-resting-bench:orders", consumer="bench")
        # As a process beside others: every pass asks Postgres what changed.
        watcher = PassOnly(store, queue, router, chain, idle_after_s=60, alone=lambda: False)

        read_ms, rebuild_ms = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            await store.resting_orders()
            read_ms.append((time.perf_counter() - started) * 1000)
            gc.collect()
            started = time.perf_counter()
            await watcher.rebuild()
            rebuild_ms.append((time.perf_counter() - started) * 1000)
        assert len(watcher.index) == args.orders

        watcher.index = type(watcher.index)()
        gc.collect()
        tracemalloc.start()
        await watcher.rebuild()
        gc.collect()
        index_bytes, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        by_pair: dict[tuple[str, str], list[RestingOrder]] = {}
        for order in watcher.index:
            by_pair.setdefault(order.pair, []).append(order)
        check: dict[int, Any] = {}
        for crossing in args.cross:
            # N orders over every pair, each lowered to 1 % under its pair's price.
            picked = [o for group in zip(*by_pair.values(), strict=False) for o in group]
            lowered = []
            for order in picked[:crossing]:
                price = chain.best_price(*order.pair)
                assert price is not None
                watcher.index.discard(order.id)
                lowered.append(attrs.evolve(order, limit_price=price * Decimal("0.99")))
                watcher.index.add(lowered[-1])
            passes = [await watcher.run_once() for _ in range(args.passes)]
            assert all(p.candidates == crossing for p in passes), passes[0]
            check[crossing] = percentiles([p.check_s * 1000 for p in passes])
            for order, original in zip(lowered, picked, strict=False):
                watcher.index.discard(order.id)
                watcher.index.add(original)
        return {
            "orders": args.orders,
            "pairs": len(PAIRS),
            "rebuild_read_ms_median": round(statistics.median(read_ms), 1),
            "rebuild_ms_median": round(statistics.median(rebuild_ms), 1),
            "rebuild_ms_runs": [round(ms) for ms in rebuild_ms],
            "index_mib": round(index_bytes / 2**20, 1),
            "index_bytes_per_order": round(index_bytes / args.orders),
            "check_ms_by_crossing": check,
        }
    finally:
        await redis.aclose()
        await pool.close()


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    # The server works in another process: nothing of ours to await but its answers.
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def resting_in_index(session: aiohttp.ClientSession, base_url: str) -> float:
    """The server's order_engine_resting_orders gauge; -1 before it answers."""
    try:
        async with session.get(f"{base_url}/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientConnectionError:
        return -1
    for line in text.splitlines():
        if line.startswith("order_engine_resting_orders "):
            return float(line.split()[1])
    return -1


async def fire_once(args: argparse.Namespace, pool: asyncpg.Pool, crossing: int) -> dict[str, Any]:
    await reset(pool, resting_orders(args.orders, crossing, random.Random(crossing)))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "REDIS_PREFIX": f"oe-resting-bench:{uuid.uuid4().hex[:8]}:",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "MOCK_DEX_QUOTE_DELAY_MS": "0",
        "MOCK_DEX_EXECUTION_DELAY_MS": "0",
        "MOCK_DEX_FAILURE_RATE": "0",
        "CHAIN_SLOT_MS": str(args.chain_slot_ms),
        "WORKER_CONCURRENCY": str(args.worker_concurrency),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "order_engine", "serve", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def indexed() -> bool:
                return await resting_in_index(session, base_url) >= int(args.orders)

            await until(indexed, 300)
            async with session.post(f"{base_url}/api/dev/pools", json=RAY_AT_3) as resp:
                assert resp.status == 201, await resp.text()
                slot = (await resp.json())["tradingFromSlot"]
        async with pool.acquire() as conn:

            async def ended() -> bool:
                done = "SELECT count(*) FROM orders WHERE status IN ('confirmed', 'failed')"
                return int(await conn.fetchval(done)) >= crossing

            await until(ended, 600)
            closed = await conn.fetchval("SELECT closed_at FROM chain_slots WHERE slot = $1", slot)
            rows = await conn.fetch(
                """
                SELECT e.status, e.created_at FROM order_events e JOIN orders o ON o.id = e.order_id
                WHERE o.status IN ('confirmed', 'failed') AND e.status IN ('routing', 'confirmed')
                """
            )
            failed = await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'failed'")
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()

    def since_launch(status: str) -> list[float]:
        return [
            (r["created_at"] - closed).total_seconds() * 1000 for r in rows if r["status"] == status
        ]

    return {
        "to_routing_ms": percentiles(since_launch("routing")),
        "to_confirmed_ms": percentiles(since_launch("confirmed")),
        "failed": failed,
    }


async def fire_figures(args: argparse.Namespace) -> dict[str, Any]:
    pool = await create_pool(args.database_url, min_size=1, max_size=2, command_timeout=120)
    try:
        return {
            str(crossing): [await fire_once(args, pool, crossing) for _ in range(args.fire_runs)]
            for crossing in args.fire
        }
    finally:
        await pool.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    await migrate(args.database_url)
    result: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds")}
    result["index"] = await index_figures(args)
    print(json.dumps(result), file=sys.stderr)
    if args.fire:
        result["fire"] = await fire_figures(args)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cross", type=int, nargs="+", default=[0, 1, 100, 10_000])
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--fire", type=int, nargs="*", default=[])
    parser.add_argument("--fire-runs", type=int, default=3)
    parser.add_argument("--chain-slot-ms", type=int, default=400)
    parser.add_argument("--worker-concurrency", type=int, default=50)
    args = parser.parse_args()
    if not args.database_url or not args.redis_url:
        parser.error("--database-url and --redis-url (or DATABASE_URL, REDIS_URL) are needed")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
