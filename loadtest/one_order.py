"""How long one order takes, end to end, against a running server.

Sends orders one at a time (no contention), follows each on its WebSocket, and prints the
median time from the HTTP response to each status, then one JSON object as the last line.
A progress bar on stderr shows the orders done and the last one's status (only when stderr
is a terminal).

    python loadtest/one_order.py --base-url http://127.0.0.1:3000 --orders 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import aiohttp
from tqdm import tqdm

WALLET = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"


async def one(session: aiohttp.ClientSession, base_url: str) -> dict[str, float]:
    """Milliseconds from sending the POST to its answer and to each status after it."""
    body = {"userWallet": WALLET, "inputToken": "SOL", "outputToken": "USDC", "inputAmount": "1"}
    sent = time.perf_counter()
    async with session.post(f"{base_url}/api/orders/execute", json=body) as resp:
        resp.raise_for_status()
        order = await resp.json()
    times = {"accepted": (time.perf_counter() - sent) * 1000}
    async with session.ws_connect(f"{base_url}{order['wsUrl']}") as ws:
        async for msg in ws:
            status = msg.json()["status"]
            times.setdefault(status, (time.perf_counter() - sent) * 1000)
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default="http://127.0.0.1:3000")
    parser.add_argument("--orders", type=int, default=10)
    args = parser.parse_args()

    runs: list[dict[str, float]] = []
    with tqdm(total=args.orders, unit="order", file=sys.stderr, disable=None) as bar:
        async with aiohttp.ClientSession() as session:
            for _ in range(args.orders):
                runs.append(await one(session, args.base_url))
                last = max(runs[-1], key=runs[-1].__getitem__)
                bar.set_postfix_str(f"{last} in {runs[-1][last]:.0f} ms")
                bar.update()
    statuses = ["accepted", "routing", "building", "submitted", "confirmed", "failed"]
    medians = {
        s: round(statistics.median(r[s] for r in runs if s in r), 1)
        for s in statuses
        if any(s in r for r in runs)
    }
    for status, ms in medians.items():
        print(f"{status:>10}: {ms:8.1f} ms (median of {sum(status in r for r in runs)})")
    print(json.dumps({"orders": len(runs), "median_ms": medians}))


if __name__ == "__main__":
    asyncio.run(main())
