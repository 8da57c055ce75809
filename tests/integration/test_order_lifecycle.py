"""Orders through the real app, Postgres, Redis Stream and workers, watched over WebSocket."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from order_engine.domain.orders import OrderStatus, can_transition
from tests.conftest import AppClient
from tests.support import (
    STATUS_PATH,
    WALLET,
    Client,
    execute,
    follow,
    follow_order,
    order_body,
)


async def test_created_order_is_pending_and_does_not_run(
    client: Client, db: asyncpg.Connection, redis: aioredis.Redis, redis_prefix: str
) -> None:
    resp = await client.post("/api/orders", json=order_body())
    assert resp.status == 201
    order = await resp.json()
    assert order["status"] == "pending"
    assert order["inputAmount"] == "1.5"
    assert order["slippageBps"] == 50
    assert order["txHash"] is None

    # An order executed afterwards runs to the end; the created one is still untouched.
    done = await execute(client)
    await follow_order(client, done["orderId"])
    resp = await client.get(f"/api/orders/{order['orderId']}")
    assert (await resp.json())["status"] == "pending"
    assert await redis.xlen(f"{redis_prefix}orders") == 0
    events = await db.fetch(
        "SELECT seq, status FROM order_events WHERE order_id = $1::uuid", order["orderId"]
    )
    assert [(e["seq"], e["status"]) for e in events] == [(1, "pending")]


async def test_executed_order_streams_every_status_and_is_stored(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    client = await start_app(mock_dex_quote_delay_ms=20, mock_dex_execution_delay_ms=200)
    accepted = await execute(client, inputAmount=10)
    order_id = accepted["orderId"]
    assert accepted["wsUrl"] == f"/ws/orders/{order_id}"
    assert accepted["status"] == "pending"

    messages = await follow_order(client, order_id)
    assert [m["status"] for m in messages] == STATUS_PATH
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    assert all(m["type"] == "status" and m["orderId"] == order_id for m in messages)
    routing, building, submitted, confirmed = (m["data"] for m in messages[1:])
    assert {q["dex"] for q in routing["quotes"]} == {"raydium", "meteora"}
    best = max(routing["quotes"], key=lambda q: Decimal(q["amountOut"]))
    assert routing["dex"] == best["dex"]
    assert routing["route"]["legs"][0]["dex"] == best["dex"]
    assert building == {"dex": best["dex"], "minAmountOut": building["minAmountOut"]}
    assert Decimal(building["minAmountOut"]) == (
        Decimal(best["amountOut"]) * Decimal("0.995")
    ).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
    assert submitted["txHash"] == confirmed["txHash"]

    resp = await client.get(f"/api/orders/{order_id}")
    order = await resp.json()
    assert order["status"] == "confirmed"
    assert order["dex"] == best["dex"]
    assert order["amountOut"] == confirmed["amountOut"]
    assert order["executedPrice"] == confirmed["executedPrice"]
    assert Decimal(order["executedPrice"]) == Decimal(order["amountOut"]) / 10
    assert order["attempts"] == 1

    resp = await client.get(f"/api/orders/{order_id}/events")
    events = (await resp.json())["events"]
    assert events == messages

    swaps = await db.fetch(
        "SELECT * FROM chain_transactions WHERE status = 'landed' AND order_id = $1::uuid",
        order_id,
    )
    assert len(swaps) == 1
    assert swaps[0]["signature"] == order["txHash"]
    assert str(swaps[0]["amount_out"].normalize()) == order["amountOut"]


async def test_dex_failure_is_retried_then_fails_the_order_with_code_and_reason(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    """Every attempt refused by the DEX: each retry is an event in `submitted` that
    names the next attempt, then a new transaction is built; the third failure ends it."""
    client = await start_app(mock_dex_failure_rate=1.0)
    accepted = await execute(client)
    messages = await follow_order(client, accepted["orderId"])
    assert [m["status"] for m in messages] == [*STATUS_PATH[:4], *["submitted"] * 4, "failed"]
    retries, rebuilds = messages[4::2][:2], messages[5::2][:2]
    assert [r["data"]["attempt"] for r in retries] == [2, 3]
    assert all(r["data"]["code"] == "dex_error" for r in retries)
    assert all(r["data"]["retryInMs"] >= 0 for r in retries)
    assert [r["data"]["attempt"] for r in rebuilds] == [2, 3]
    signatures = [messages[3]["data"]["txHash"], *(r["data"]["txHash"] for r in rebuilds)]
    assert len(set(signatures)) == 3  # a new transaction for every attempt
    failed = messages[-1]["data"]
    assert failed["code"] == "dex_error"
    assert "simulated network error" in failed["reason"]
    assert failed["attempt"] == 3
    order = await (await client.get(f"/api/orders/{accepted['orderId']}")).json()
    assert order["failureReason"] == failed["reason"]
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 0


async def test_pair_without_a_pool_fails_at_routing(client: Client) -> None:
    # POPCAT has no pool until one is launched: not even a two-hop path reaches it.
    accepted = await execute(client, inputToken="POPCAT", outputToken="USDC", inputAmount="1000")
    messages = await follow_order(client, accepted["orderId"])
    assert [m["status"] for m in messages] == ["pending", "failed"]
    assert messages[-1]["data"]["code"] == "no_route"


async def test_pool_moving_past_the_tolerance_fails_with_slippage_exceeded(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    """Two large swaps quoted on the same pool at once, with no tolerance: the first to
    settle moves the reserves, so the second would get less than its minimum."""
    client = await start_app(mock_dex_execution_delay_ms=300)
    first, second = await asyncio.gather(
        execute(client, inputAmount="5000", slippageBps=0),
        execute(client, inputAmount="5000", slippageBps=0),
    )
    results = await asyncio.gather(
        follow_order(client, first["orderId"]), follow_order(client, second["orderId"])
    )
    finals = sorted(m[-1]["status"] for m in results)
    assert finals == ["confirmed", "failed"]
    failed_stream = next(m for m in results if m[-1]["status"] == "failed")
    # Not retried: a price that moved away is not a transient failure.
    assert [m["status"] for m in failed_stream] == [*STATUS_PATH[:4], "failed"]
    assert failed_stream[-1]["data"]["code"] == "slippage_exceeded"
    assert failed_stream[-1]["data"]["attempt"] == 1
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE status = 'landed'") == 1


async def test_socket_replays_history_and_since_skips_what_was_seen(client: Client) -> None:
    accepted = await execute(client)
    order_id = accepted["orderId"]
    everything = await follow_order(client, order_id)

    replayed = await follow_order(client, order_id)
    assert replayed == everything

    messages, code = await follow(client, f"/ws/orders/{order_id}?since=3")
    assert code == 1000
    assert [m["seq"] for m in messages] == [4, 5]

    messages, code = await follow(client, f"/ws/orders/{order_id}?since=5")
    assert (messages, code) == ([], 1000)


async def test_socket_rejects_bad_ids_and_parameters(client: Client) -> None:
    messages, code = await follow(client, "/ws/orders/not-a-uuid")
    assert code == 4400
    assert messages[0]["type"] == "error"
    assert messages[0]["code"] == "invalid_order_id"

    messages, code = await follow(client, "/ws/orders/3f0c1a52-3d0e-4a59-9a8e-6f1f8d2b9c11")
    assert code == 4404
    assert messages[0]["code"] == "order_not_found"

    accepted = await execute(client)
    messages, code = await follow(client, f"/ws/orders/{accepted['orderId']}?since=-1")
    assert code == 4400
    assert messages[0]["code"] == "validation_error"


async def test_hundred_concurrent_orders_all_end_with_gapless_events(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    client = await start_app(
        mock_dex_quote_delay_ms=5, mock_dex_execution_delay_ms=50, mock_dex_failure_rate=0.1
    )
    amounts = [f"{1 + i % 7}.{i:03d}" for i in range(100)]
    accepted = await asyncio.gather(*(execute(client, inputAmount=a) for a in amounts))
    streams = await asyncio.gather(*(follow_order(client, a["orderId"]) for a in accepted))

    finals = [s[-1]["status"] for s in streams]
    assert set(finals) <= {"confirmed", "failed"}
    assert "confirmed" in finals
    assert "failed" in finals  # with a 10% failure rate over 100 orders
    for stream in streams:
        assert [m["seq"] for m in stream] == list(range(1, len(stream) + 1))
        statuses = [OrderStatus(m["status"]) for m in stream]
        # A retry is an event that keeps the status; no status ever goes back.
        assert all(a == b or can_transition(a, b) for a, b in itertools.pairwise(statuses))

    rows = await db.fetch(
        """
        SELECT o.id, o.status, o.last_seq, count(e.seq) AS events, max(e.seq) AS top
        FROM orders o JOIN order_events e ON e.order_id = o.id GROUP BY o.id
        """
    )
    assert len(rows) == 100
    assert all(r["events"] == r["top"] == r["last_seq"] for r in rows)
    swaps = await db.fetch(
        """
        SELECT s.order_id, count(*) AS n, bool_and(s.signature = o.tx_hash) AS same_tx
        FROM chain_transactions s JOIN orders o ON o.id = s.order_id
        WHERE s.status = 'landed' GROUP BY s.order_id
        """
    )
    assert all(s["n"] == 1 and s["same_tx"] for s in swaps)
    assert len(swaps) == finals.count("confirmed")


async def test_wallet_orders_page_newest_first(client: Client) -> None:
    created = []
    for i in range(5):
        resp = await client.post("/api/orders", json=order_body(inputAmount=i + 1))
        created.append((await resp.json())["orderId"])

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(f"/api/orders/user/{WALLET}{query}")
        assert resp.status == 200
        body = await resp.json()
        seen.extend(o["orderId"] for o in body["orders"])
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == created[::-1]

    resp = await client.get(f"/api/orders/user/{WALLET}")
    assert [o["orderId"] for o in (await resp.json())["orders"]] == created[::-1]


async def test_health_reports_dependencies_and_work(client: Client) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert body["postgres"] == "ok"
    assert body["redis"] == "ok"
    assert body["queueDepth"] == 0
    assert body["inFlight"] == 0
