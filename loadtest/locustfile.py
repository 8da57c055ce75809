"""Locust users that submit market orders and follow each on its WebSocket to the end.

Locust's statistics then hold two rows: `POST /api/orders/execute` (the HTTP submit
latency, with any non-202 as a failure) and `WS accept -> confirmed` (from the 202 to the
`confirmed` message; an order that ends `failed` counts as a failure of that row, named
by its failure code). Headless, against a running server:

    locust -f loadtest/locustfile.py --headless -H http://127.0.0.1:3000 \\
        --users 50 --spawn-rate 50 --run-time 60s --only-summary

Needs the `load` extra: pip install -e '.[load]'. Every user's socket comes from this
machine's address: for more than 100 users raise the server's WS_MAX_PER_CLIENT.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import base58
import websocket
from locust import FastHttpUser, between, task

TERMINAL = {"confirmed", "failed"}
_user_numbers = itertools.count(1)


class OrderFailed(Exception):
    """The order ended `failed`; the message is its failure code."""


class MarketOrderUser(FastHttpUser):
    """One wallet placing market orders one after another, each followed to its end."""

    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        number = next(_user_numbers)
        self.wallet = base58.b58encode(number.to_bytes(4, "big") * 8).decode()
        self.sent = 0

    def body(self) -> dict[str, Any]:
        # Alternate the direction so that the simulated pools stay near their start price.
        self.sent += 1
        if self.sent % 2:
            pair = {"inputToken": "SOL", "outputToken": "USDC", "inputAmount": "0.1"}
        else:
            pair = {"inputToken": "USDC", "outputToken": "SOL", "inputAmount": "15"}
        return {"userWallet": self.wallet, **pair, "slippageBps": 100}

    @task
    def market_order(self) -> None:
        with self.client.post("/api/orders/execute", json=self.body(), catch_response=True) as resp:
            if resp.status_code != 202:
                resp.failure(f"HTTP {resp.status_code}: {resp.text}")
                return
            order = resp.json()
        accepted = time.perf_counter()
        ws_url = str(self.host).replace("http", "ws", 1) + order["wsUrl"]
        status, failure = None, None
        ws = None
        try:
            ws = websocket.create_connection(ws_url, timeout=60)
            while status not in TERMINAL:
                event = json.loads(ws.recv())
                if event.get("type") != "status":
                    continue
                status = event["status"]
                if status == "failed":
                    failure = OrderFailed(event.get("data", {}).get("code", "unknown"))
        except (websocket.WebSocketException, OSError) as exc:
            failure = OrderFailed(f"socket: {exc}")
        finally:
            if ws is not None:
                ws.close()
        self.environment.events.request.fire(
            request_type="WS",
            name="accept -> confirmed",
            response_time=(time.perf_counter() - accepted) * 1000,
            response_length=0,
            exception=failure,
            context={},
        )
