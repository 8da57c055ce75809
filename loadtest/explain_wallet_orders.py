"""EXPLAIN the wallet listing queries on a table of 100k orders.

Creates a scratch database on the server of --admin-url, migrates it, loads the orders
(100 wallets, every status), ANALYZEs, prints the plan of each shape of the listing
(first page and next page, with and without a status filter), then drops the database.
Exits 1 if any plan has a sequential scan.

    python loadtest/explain_wallet_orders.py --admin-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime

import asyncpg

from order_engine.migrations import apply_migrations
from order_engine.store.orders import WALLET_ORDER_QUERIES

LOAD = """
INSERT INTO orders (id, type, status, user_wallet, input_token, output_token, input_amount,
                    slippage_bps, created_at, updated_at, client_order_id)
SELECT gen_random_uuid(), 'market',
       (ARRAY['pending', 'routing', 'confirmed', 'confirmed', 'confirmed', 'failed',
              'cancelled'])[1 + i % 7],
       'wallet-' || (i % $2), 'SOL', 'USDC', 1 + i % 10, 50,
       now() - make_interval(secs => i), now(), 'client-' || i
FROM generate_series(1, $1) AS i
"""


async def explain(url: str, orders: int, wallets: int) -> bool:
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
        await conn.execute(LOAD, orders, wallets)
        await conn.execute("ANALYZE orders")
        total = await conn.fetchval("SELECT count(*) FROM orders")
        print(f"orders: {total}, wallets: {wallets}\n")
        cursor = (datetime.now(UTC), uuid.uuid4())
        clean = True
        for (status, after, client), query in WALLET_ORDER_QUERIES.items():
            args: list[object] = ["wallet-42", 51]
            if status:
                args.append("confirmed")
            if client:
                args.append("client-42")
            if after:
                args.extend(cursor)
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {query}", *args)
            plan = "\n".join(r[0] for r in rows)
            print(f"-- status: {status}, clientOrderId: {client}, cursor: {after}\n{plan}\n")
            clean = clean and "Seq Scan" not in plan
        return clean
    finally:
        await conn.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--wallets", type=int, default=100)
    args = parser.parse_args()
    name = f"oe_explain_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base, _, _ = args.admin_url.rpartition("/")
            clean = await explain(f"{base}/{name}", args.orders, args.wallets)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    print("no sequential scan" if clean else "SEQUENTIAL SCAN FOUND")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
