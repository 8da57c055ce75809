"""Where an order's time goes between its acceptance and its confirmation, from what the
engine and the chain recorded in Postgres.

For the `--last` confirmed orders of a database: accept -> routing (the queue and the
quotes), routing -> submitted (building), submitted -> sent (the transaction reaching
the chain), sent -> due (the simulated execution delay), due -> slot (waiting for the
slot that applies it), slot -> confirmed (the summary reaching the engine and the
confirmation being written), and the whole. Percentiles in milliseconds; the last line
printed is one JSON object.

    python loadtest/latency_breakdown.py --database-url postgresql://… --last 12000 \\
        --execution-delay-ms 2500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
from typing import Any

import asyncpg

QUERY = """
WITH recent AS (
    SELECT id, created_at, tx_hash FROM orders
    WHERE status = 'confirmed' ORDER BY created_at DESC LIMIT $1
)
SELECT
    r.created_at AS accepted,
    (SELECT created_at FROM order_events e WHERE e.order_id = r.id AND e.status = 'routing'
     ORDER BY seq LIMIT 1) AS routing,
    (SELECT created_at FROM order_events e WHERE e.order_id = r.id AND e.status = 'submitted'
     ORDER BY seq DESC LIMIT 1) AS submitted,
    (SELECT created_at FROM order_events e WHERE e.order_id = r.id AND e.status = 'confirmed')
        AS confirmed,
    t.sent_at AS sent,
    s.closed_at AS slot_closed
FROM recent r
JOIN chain_transactions t ON t.signature = r.tx_hash
JOIN chain_slots s ON s.slot = t.slot
"""


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 1)

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": rank(1.0)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    conn = await asyncpg.connect(args.database_url)
    try:
        rows = await conn.fetch(QUERY, args.last)
    finally:
        await conn.close()
    delay = args.execution_delay_ms
    parts: dict[str, list[float]] = {
        "accept_to_routing": [],
        "routing_to_submitted": [],
        "submitted_to_sent": [],
        "sent_to_due": [],
        "due_to_slot": [],
        "slot_to_confirmed": [],
        "accept_to_confirmed": [],
    }

    def ms(later: Any, earlier: Any) -> float:
        return float((later - earlier).total_seconds() * 1000)

    for r in rows:
        parts["accept_to_routing"].append(ms(r["routing"], r["accepted"]))
        parts["routing_to_submitted"].append(ms(r["submitted"], r["routing"]))
        parts["submitted_to_sent"].append(ms(r["sent"], r["submitted"]))
        parts["sent_to_due"].append(float(delay))
        parts["due_to_slot"].append(ms(r["slot_closed"], r["sent"]) - delay)
        parts["slot_to_confirmed"].append(ms(r["confirmed"], r["slot_closed"]))
        parts["accept_to_confirmed"].append(ms(r["confirmed"], r["accepted"]))
    return {"orders": len(rows), **{name: percentiles(v) for name, v in parts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--last", type=int, default=10_000)
    parser.add_argument("--execution-delay-ms", type=float, default=2500.0)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required")
    result = asyncio.run(run(args))
    for name, figures in result.items():
        print(f"{name:>22}: {figures}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
