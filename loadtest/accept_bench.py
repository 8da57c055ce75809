"""How fast a server accepts orders: `POST /api/orders/execute` driven by wrk.

Starts `python -m order_engine serve` from the working directory (so the same script
measures any checkout: run it from a worktree of another commit with `--python` that
checkout's interpreter), with the default mock delays and LOG_LEVEL=WARNING, then runs
wrk (Debian's `wrk`, a C client that costs the machine far less than the server does)
with `--connections` connections for `--duration-s` seconds, each request a valid market
order of one of 100 wallets. Prints one JSON object: accepted/s (responses 202 a
second), wrk's latency percentiles, non-2xx answers, and the server's peak RSS.

    python loadtest/accept_bench.py --connections 64 --duration-s 10
    cd /tmp/ref && $OLDPWD/.venv/bin/python $OLDPWD/loadtest/accept_bench.py \\
        --python /tmp/ref/.venv/bin/python

DATABASE_URL and REDIS_URL name the servers; the spawned server gets a Redis prefix of
its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import base58

LUA = """
local wallets = {%s}
local n = 0
request = function()
  n = n + 1
  local body = '{"userWallet": "' .. wallets[(n %% #wallets) + 1] .. '", '
    .. '"inputToken": "SOL", "outputToken": "USDC", "inputAmount": "0.1"}'
  return wrk.format("POST", "/api/orders/execute",
    {["Content-Type"] = "application/json"}, body)
end
local accepted = 0
response = function(status, headers, body)
  if status == 202 then accepted = accepted + 1 end
end
"""

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wallets(count: int) -> list[str]:
    return [base58.b58encode(i.to_bytes(4, "big") * 8).decode() for i in range(1, count + 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited before it was healthy")
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not become healthy in 60 s")


def peak_rss_mib(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def parse_wrk(output: str) -> dict[str, object]:
    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return round(float(value) * UNITS_MS[unit], 2)

    latency = {
        f"p{p}": ms(value)
        for p, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, flags=re.M)
    }
    requests = re.search(r"(\d+) requests in ([\d.]+)(s|m)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    assert requests is not None, output
    duration = float(requests.group(2)) * (60 if requests.group(3) == "m" else 1)
    total = int(requests.group(1))
    refused = int(non2xx.group(1)) if non2xx else 0
    return {
        "requests": total,
        "non_2xx": refused,
        "accepted_per_s": round((total - refused) / duration, 1),
        "latency_ms": latency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=sys.executable, help="the engine's interpreter")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--label", default=os.getcwd())
    args = parser.parse_args()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="oe-accept-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA % ", ".join(f'"{w}"' for w in wallets(100)))
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATA_DIR": tmp,
            "LOG_LEVEL": "WARNING",
            "REDIS_PREFIX": f"oe-accept-{uuid.uuid4().hex[:8]}:",
        }
        server = subprocess.Popen(
            [args.python, "-m", "order_engine", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(base_url, server)
            wrk = subprocess.run(
                [
                    "wrk",
                    f"-t{args.threads}",
                    f"-c{args.connections}",
                    f"-d{args.duration_s}s",
                    "--latency",
                    "-s",
                    str(script),
                    f"{base_url}/api/orders/execute",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rss = peak_rss_mib(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
    result = {
        "label": args.label,
        "connections": args.connections,
        "duration_s": args.duration_s,
        **parse_wrk(wrk.stdout),
        "server_peak_rss_mib": rss,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
