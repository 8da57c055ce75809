"""Throughput and latency of a running server under load, at a fixed offered rate or a
fixed concurrency, for a fixed number of orders.

Every order is followed to its terminal status on a WebSocket (never by polling). The
last line printed is one JSON object: offered and achieved orders/s, HTTP submit latency
and accept -> confirmed latency (p50/p90/p99/max, ms), failures by code, orders not
terminal at the end, and the server's peak RSS. While it runs, a progress bar on stderr
counts orders ended and shows the rate so far (only when stderr is a terminal).

    python loadtest/bench.py --base-url http://127.0.0.1:3000 --orders 2000 --concurrency 100
    python loadtest/bench.py --spawn --quote-delay-ms 0 --execution-delay-ms 0 \\
        --worker-concurrency 50 --orders 2000 --rate 300

With --spawn it starts `order-engine serve` itself (on a free port, logging at WARNING,
its per-address WebSocket cap raised, since every wallet's socket comes from one address)
with the mock delays and worker concurrency given here, and stops it at the end; the
server takes DATABASE_URL / REDIS_URL from the environment, or runs embedded ones under
a temporary directory when they are unset. Its peak RSS is read from /proc (VmHWM); for
a server started elsewhere pass --server-pid.

Orders are followed through one live socket per wallet, `/ws/orders?wallet=W`, each
opened before the first order is sent, so that no status is missed; a status may even
arrive before its 202 does. Accept -> confirmed is measured on this side: from the 202
to the arrival of the `confirmed` message (0 when that came first).

The client shares the machine with the server, so it runs on uvloop, sends bodies encoded
once and parses with orjson; it reports its own CPU per order beside the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import base58
import orjson
import uvloop
from tqdm import tqdm

TERMINAL = {"confirmed", "failed"}
JSON_HEADERS = {"Content-Type": "application/json"}


@attrs.define
class Outcome:
    """What happened to one order, as seen by the client."""

    submit_ms: float | None = None
    accept_to_confirmed_ms: float | None = None
    status: str | None = None
    failure: str | None = None


def wallets(count: int) -> list[str]:
    """`count` distinct valid wallets (base58 of 32 bytes), the same on every run."""
    return [base58.b58encode(i.to_bytes(4, "big") * 8).decode() for i in range(1, count + 1)]


def order_body(index: int, wallet: str, slippage_bps: int) -> dict[str, Any]:
    # Alternate the direction, so that the simulated pools stay near their start price
    # however many orders run, and slippage failures come from concurrency alone.
    if index % 2 == 0:
        pair = {"inputToken": "SOL", "outputToken": "USDC", "inputAmount": "0.1"}
    else:
        pair = {"inputToken": "USDC", "outputToken": "SOL", "inputAmount": "15"}
    return {"userWallet": wallet, **pair, "slippageBps": slippage_bps}


@attrs.frozen
class Ending:
    status: str
    code: str | None
    at: float
    """time.perf_counter() when the terminal message arrived."""


class WalletFeeds:
    """One live socket per wallet; the terminal message of every order, by order id."""

    def __init__(self) -> None:
        self._endings: dict[str, asyncio.Future[Ending]] = {}
        self._readers: list[asyncio.Task[None]] = []
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []

    def ending(self, order_id: str) -> asyncio.Future[Ending]:
        return self._endings.setdefault(order_id, asyncio.get_running_loop().create_future())

    async def open(self, session: aiohttp.ClientSession, base_url: str, owners: list[str]) -> None:
        self._sockets = list(
            await asyncio.gather(
                *(session.ws_connect(f"{base_url}/ws/orders?wallet={w}") for w in owners)
            )
        )
        self._readers = [asyncio.create_task(self._read(ws)) for ws in self._sockets]

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            event = orjson.loads(msg.data)
            if event.get("type") != "status" or event["status"] not in TERMINAL:
                continue
            code = event.get("data", {}).get("code") if event["status"] == "failed" else None
            future = self.ending(event["orderId"])
            if not future.done():
                future.set_result(Ending(event["status"], code, time.perf_counter()))

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self._sockets))
        await asyncio.gather(*self._readers, return_exceptions=True)


def error_code(raw: bytes) -> str:
    """The API error's code in a refusal's body, or ? when it has none."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "?"
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code", "?")) if isinstance(error, dict) else "?"


async def run_order(
    session: aiohttp.ClientSession,
    base_url: str,
    body: bytes,
    feeds: WalletFeeds,
    timeout_s: float,
) -> Outcome:
    outcome = Outcome()
    sent = time.perf_counter()
    try:
        async with session.post(
            f"{base_url}/api/orders/execute", data=body, headers=JSON_HEADERS
        ) as resp:
            raw = await resp.read()
            accepted = time.perf_counter()
            outcome.submit_ms = (accepted - sent) * 1000
            if resp.status != 202:
                outcome.failure = f"http_{resp.status}_{error_code(raw)}"
                return outcome
        async with asyncio.timeout(timeout_s):
            ending = await feeds.ending(orjson.loads(raw)["orderId"])
    except TimeoutError:
        return outcome
    except aiohttp.ClientError as exc:
        outcome.failure = f"client_{type(exc).__name__}"
        return outcome
    outcome.status = ending.status
    if ending.status == "confirmed":
        outcome.accept_to_confirmed_ms = max(ending.at - accepted, 0.0) * 1000
    else:
        outcome.failure = ending.code or "unknown"
    return outcome


def percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p90/p99 and the maximum, in ms to 0.1."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 1)

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": round(ordered[-1], 1)}


def server_pids(pid: int | None) -> list[int]:
    """The server's process and, when it runs several, its children."""
    if pid is None:
        return []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *map(int, children)]


def peak_rss_mib(pids: list[int]) -> float | None:
    """The peak resident memory of the server's processes, summed."""
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    return round(sum(peaks) / 1024, 1) if peaks else None


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the server's processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class Spawned:
    process: asyncio.subprocess.Process
    base_url: str
    log: list[str] = attrs.Factory(list)
    drain: asyncio.Task[None] | None = None


@asynccontextmanager
async def spawn_server(args: argparse.Namespace) -> AsyncIterator[Spawned]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="oe-bench-") as data_dir:
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATA_DIR": data_dir,
            "LOG_LEVEL": "WARNING",
            "WORKER_CONCURRENCY": str(args.worker_concurrency),
            "MOCK_DEX_QUOTE_DELAY_MS": str(args.quote_delay_ms),
            "MOCK_DEX_EXECUTION_DELAY_MS": str(args.execution_delay_ms),
            "MOCK_DEX_FAILURE_RATE": str(args.failure_rate),
            "CHAIN_SLOT_MS": str(args.chain_slot_ms),
            # Every wallet's socket comes from this one address; the per-address cap that
            # protects a real deployment (100) would refuse some of them.
            "WS_MAX_PER_CLIENT": str(max(1000, args.wallets)),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "order_engine",
            "serve",
            "--processes",
            str(args.processes),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        server = Spawned(process, f"http://127.0.0.1:{port}")
        try:
            await asyncio.wait_for(wait_until_healthy(server), 60)
            yield server
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 60)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            if server.drain is not None:
                await server.drain


async def wait_until_healthy(server: Spawned) -> None:
    """Poll /health until it answers 200: at LOG_LEVEL=WARNING the server prints nothing
    when it starts listening."""
    assert server.process.stderr is not None
    stderr = server.process.stderr

    async def drain() -> None:
        while line := await stderr.readline():
            server.log.append(line.decode())

    server.drain = asyncio.create_task(drain())
    async with aiohttp.ClientSession() as session:
        while server.process.returncode is None:
            try:
                async with session.get(f"{server.base_url}/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    await server.drain
    raise RuntimeError("server exited before it was healthy:\n" + "".join(server.log))


def progress_bar(total: int) -> tqdm[Any]:
    """Orders ended so far, on stderr; silent when stderr is not a terminal (disable=None),
    so that logs of scripted runs hold only the JSON line."""
    return tqdm(total=total, unit="order", file=sys.stderr, disable=None, smoothing=0.1)


async def drive(args: argparse.Namespace, base_url: str) -> tuple[list[Outcome], float]:
    """Run every order; return the outcomes and the seconds from the first submit to the
    last order's end."""
    owners = wallets(args.wallets)
    bodies = [
        orjson.dumps(order_body(i, owners[i % len(owners)], args.slippage_bps))
        for i in range(args.orders)
    ]
    outcomes: list[Outcome] = []
    connector = aiohttp.TCPConnector(limit=0)
    feeds = WalletFeeds()
    bar = progress_bar(len(bodies))

    async def counted(body: bytes) -> Outcome:
        outcome = await run_order(session, base_url, body, feeds, args.timeout_s)
        bar.update()
        if outcome.failure is not None:
            bar.set_postfix(failed=sum(o.failure is not None for o in outcomes) + 1)
        return outcome

    async with aiohttp.ClientSession(connector=connector) as session:
        await feeds.open(session, base_url, owners)
        started = time.perf_counter()
        if args.rate is not None:
            tasks = []
            for i, body in enumerate(bodies):
                # Open loop: order i is sent at its scheduled time whatever the server
                # does, so a slow server meets the same offered load.
                delay = started + i / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(counted(body)))
            outcomes = list(await asyncio.gather(*tasks))
        else:
            queue = collections.deque(bodies)

            async def client() -> None:
                while queue:
                    body = queue.popleft()
                    outcomes.append(await counted(body))

            await asyncio.gather(*(client() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        bar.close()
        await feeds.close()
    return outcomes, elapsed


def summary(
    args: argparse.Namespace,
    outcomes: list[Outcome],
    elapsed: float,
    rss: float | None,
    cpu_s: float | None,
    client_cpu_s: float,
) -> dict[str, Any]:
    failures = collections.Counter(o.failure for o in outcomes if o.failure is not None)
    terminal = sum(o.status in TERMINAL for o in outcomes)
    return {
        "orders": len(outcomes),
        "mode": "rate" if args.rate is not None else "concurrency",
        "offered_orders_per_s": args.rate,
        "concurrency": args.concurrency,
        "achieved_orders_per_s": round(terminal / elapsed, 1) if elapsed > 0 else None,
        "confirmed": sum(o.status == "confirmed" for o in outcomes),
        "duration_s": round(elapsed, 2),
        "submit_ms": percentiles([o.submit_ms for o in outcomes if o.submit_ms is not None]),
        "accept_to_confirmed_ms": percentiles(
            [o.accept_to_confirmed_ms for o in outcomes if o.accept_to_confirmed_ms is not None]
        ),
        "failures": dict(sorted(failures.items())),
        "not_terminal": sum(o.status not in TERMINAL and o.failure is None for o in outcomes),
        "server_peak_rss_mib": rss,
        "server_cpu_ms_per_order": round(cpu_s * 1000 / terminal, 3)
        if cpu_s and terminal
        else None,
        "client_cpu_ms_per_order": round(client_cpu_s * 1000 / terminal, 3) if terminal else None,
        "server": (
            {
                "spawned": True,
                "worker_concurrency": args.worker_concurrency,
                "quote_delay_ms": args.quote_delay_ms,
                "execution_delay_ms": args.execution_delay_ms,
                "failure_rate": args.failure_rate,
                "chain_slot_ms": args.chain_slot_ms,
                "processes": args.processes,
            }
            if args.spawn
            else {"spawned": False}
        ),
        "follow": "wallet socket",
    }


async def measured(args: argparse.Namespace, base_url: str, pid: int | None) -> dict[str, Any]:
    pids = server_pids(pid)
    cpu_before, client_before = cpu_seconds(pids), time.process_time()
    outcomes, elapsed = await drive(args, base_url)
    cpu_s = cpu_seconds(pids) - cpu_before if pids else None
    client_cpu_s = time.process_time() - client_before
    return summary(args, outcomes, elapsed, peak_rss_mib(pids), cpu_s, client_cpu_s)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.spawn:
        async with spawn_server(args) as server:
            return await measured(args, server.base_url, server.process.pid)
    return await measured(args, args.base_url, args.server_pid)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:3000")
    parser.add_argument("--orders", type=int, default=1000)
    load = parser.add_mutually_exclusive_group(required=True)
    load.add_argument("--concurrency", type=int, help="orders in flight at once (closed loop)")
    load.add_argument("--rate", type=float, help="orders sent per second (open loop)")
    parser.add_argument("--wallets", type=int, default=100, help="distinct user wallets")
    parser.add_argument("--slippage-bps", type=int, default=100)
    parser.add_argument(
        "--timeout-s", type=float, default=120.0, help="longest wait for one order's end"
    )
    parser.add_argument("--server-pid", type=int, help="pid of a server not spawned, for RSS")
    spawn = parser.add_argument_group("--spawn: start the server with these settings")
    spawn.add_argument("--spawn", action="store_true")
    spawn.add_argument("--worker-concurrency", type=int, default=50)
    spawn.add_argument("--quote-delay-ms", type=int, default=200)
    spawn.add_argument("--execution-delay-ms", type=int, default=2500)
    spawn.add_argument("--failure-rate", type=float, default=0.0)
    spawn.add_argument("--chain-slot-ms", type=int, default=400)
    spawn.add_argument("--processes", type=int, default=1)
    return parser.parse_args(argv)


def main() -> None:
    result = uvloop.run(bench(parse_args()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
