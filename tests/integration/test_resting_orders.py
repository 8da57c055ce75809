"""Limit and sniper orders through HTTP and the sockets: they rest in `waiting`, fire in
the slot whose prices or launches reach them, execute no worse than their limit, expire
at their deadline, and race a cancel with exactly one winner."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import attrs
import pytest

from order_engine.api.appkeys import CHAIN_CLIENT, DB_POOL, HUB, QUEUE, ROUTER
from order_engine.domain.errors import StatusConflict
from order_engine.domain.events import Cancelled, Routed, Waiting
from order_engine.domain.orders import Changes, NewOrder, OrderStatus, OrderType
from order_engine.domain.routes import DIRECT, Quote, Route, price_of
from order_engine.engine.triggers import CATCH_UP_EVERY_S
from order_engine.routing.router import limit_amount_out, min_amount_out
from order_engine.routing.tokens import TOKENS
from order_engine.store.orders import OrderStore, create_pool
from tests.conftest import AppClient
from tests.support import OTHER_WALLET, RAY_AT_3, WALLET, Client, execute, follow_order

RESTED = ["pending", "waiting"]
FIRED = ["routing", "building", "submitted", "confirmed"]
LIMIT = NewOrder(
    type=OrderType.LIMIT,
    user_wallet=WALLET,
    input_token="SOL",
    output_token="USDC",
    input_amount=Decimal(1),
    slippage_bps=50,
    limit_price=Decimal(150),
    expires_at=None,
)
QUOTE = Quote("raydium", "SOL", "USDC", Decimal(1), Decimal(150), 25, Decimal(0))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def until_status(client: Client, order_id: str, status: str) -> None:
    """Follow the order's socket until it reaches `status`."""
    ws = await client.ws_connect(f"/ws/orders/{order_id}")
    async with asyncio.timeout(10):
        while (message := await ws.receive_json())["type"] != "status" or (
            message["status"] != status
        ):
            pass
    await ws.close()


async def follow_statuses(client: Client, order_id: str) -> list[dict[str, Any]]:
    """The order's status messages to its end, without the price messages among them."""
    return [m for m in await follow_order(client, order_id) if m["type"] == "status"]


async def launch(client: Client, pool: dict[str, str]) -> int:
    resp = await client.post("/api/dev/pools", json=pool)
    assert resp.status == 201, await resp.text()
    slot: int = (await resp.json())["tradingFromSlot"]
    return slot


async def test_a_limit_order_rests_and_fires_when_a_launch_crosses_its_limit(
    client: Client,
) -> None:
    """RAY → USDC at 2.5 or better rests while RAY trades at 2, fires once a pool offering
    3 launches, and executes at 2.5 or better with minAmountOut at the limit."""
    order = await execute(
        client,
        type="limit",
        inputToken="RAY",
        outputToken="USDC",
        inputAmount="10",
        limitPrice="2.5",
        slippageBps=5000,
    )
    assert (order["type"], order["limitPrice"]) == ("limit", "2.5")
    await until_status(client, order["orderId"], "waiting")
    events = (await (await client.get(f"/api/orders/{order['orderId']}/events")).json())["events"]
    waiting = events[-1]["data"]
    assert waiting.keys() == {"limitPrice", "price", "expiresAt", "slot"}
    assert waiting["limitPrice"] == "2.5"
    assert Decimal("1.9") < Decimal(waiting["price"]) < Decimal("2.5")
    assert stamp(waiting["expiresAt"]) == stamp(order["expiresAt"])

    await launch(client, RAY_AT_3)
    messages = await follow_statuses(client, order["orderId"])
    assert [m["status"] for m in messages] == RESTED + FIRED
    assert messages[2]["data"]["dex"] == "meteora"
    # inputAmount times limitPrice is the floor, though 50 % slippage would allow 15.
    assert messages[3]["data"]["minAmountOut"] == "25"
    assert Decimal(messages[-1]["data"]["executedPrice"]) >= Decimal("2.5")


async def test_a_limit_order_fires_when_trades_move_the_price_across_it(client: Client) -> None:
    """SOL → USDC at 151 rests while SOL trades near 150; a large buy of SOL lifts its
    price past 151 and the order fires, executing at 151 or better."""
    order = await execute(client, type="limit", limitPrice="151", inputAmount="1")
    await until_status(client, order["orderId"], "waiting")
    buy = await execute(
        client, inputToken="USDC", outputToken="SOL", inputAmount="500000", slippageBps=5000
    )
    assert (await follow_statuses(client, buy["orderId"]))[-1]["status"] == "confirmed"
    messages = await follow_statuses(client, order["orderId"])
    assert [m["status"] for m in messages] == RESTED + FIRED
    assert Decimal(messages[-1]["data"]["executedPrice"]) >= Decimal("151")


async def test_an_order_whose_price_never_comes_expires_at_its_deadline(
    client: Client, db: asyncpg.Connection
) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=1)
    order = await execute(
        client, type="limit", limitPrice="1000", expiresAt=iso(deadline), inputAmount="1"
    )
    messages = await follow_statuses(client, order["orderId"])
    assert [m["status"] for m in messages] == [*RESTED, "expired"]
    expired = messages[-1]
    assert stamp(expired["data"]["expiresAt"]) == stamp(order["expiresAt"])
    # At the deadline: within a few of the test's 10 ms slots of it, never before.
    late = stamp(expired["timestamp"]) - stamp(order["expiresAt"])
    assert timedelta(0) <= late < timedelta(seconds=0.5), late
    assert await db.fetchval("SELECT count(*) FROM chain_transactions WHERE slot > 0") == 0


async def test_a_sniper_order_buys_in_the_slot_after_its_pool_launches(
    client: Client, db: asyncpg.Connection
) -> None:
    order = await execute(
        client, type="sniper", inputToken="SOL", outputToken="POPCAT", inputAmount="0.5"
    )
    await until_status(client, order["orderId"], "waiting")
    events = (await (await client.get(f"/api/orders/{order['orderId']}/events")).json())["events"]
    assert events[-1]["data"].keys() == {"token", "expiresAt", "slot"}
    assert events[-1]["data"]["token"] == "POPCAT"

    slot = await launch(
        client,
        {
            "dex": "raydium",
            "tokenA": "POPCAT",
            "tokenB": "SOL",
            "reserveA": "5000000",
            "reserveB": "250",
        },
    )
    messages = await follow_statuses(client, order["orderId"])
    assert [m["status"] for m in messages] == RESTED + FIRED
    assert messages[2]["data"]["route"]["legs"][0]["outputToken"] == "POPCAT"
    closed = await db.fetchval("SELECT closed_at FROM chain_slots WHERE slot = $1", slot)
    # Fired by the pass after the launch's slot, not by some later look.
    assert stamp(messages[2]["timestamp"]) - closed < timedelta(seconds=0.5)
    landed = await db.fetchval(
        "SELECT slot FROM chain_transactions WHERE order_id = $1 AND status = 'landed'",
        order["orderId"],
    )
    assert landed > slot


async def test_resting_orders_are_listed_by_status(client: Client) -> None:
    resting = [
        await execute(client, type="limit", limitPrice="1000", inputAmount="1") for _ in range(2)
    ]
    await execute(client, inputAmount="1")
    for order in resting:
        await until_status(client, order["orderId"], "waiting")
    resp = await client.get(f"/api/orders/user/{WALLET}?status=waiting")
    listed = [o["orderId"] for o in (await resp.json())["orders"]]
    assert listed == [o["orderId"] for o in reversed(resting)]


async def test_past_the_resting_cap_a_wallet_is_refused_with_429(start_app: AppClient) -> None:
    """Counted in Postgres at accept time: of five submissions at once, three get in;
    market orders and other wallets do not count; a cancel frees a place."""
    client = await start_app(max_resting_per_wallet=3)
    limit = {"type": "limit", "limitPrice": "1000", "inputAmount": "1"}
    answers = await asyncio.gather(
        *(client.post("/api/orders", json={**_body(), **limit}) for _ in range(5))
    )
    assert sorted(r.status for r in answers) == [201, 201, 201, 429, 429]
    refused = next(r for r in answers if r.status == 429)
    assert (await refused.json())["error"]["code"] == "rate_limited"
    assert "MAX_RESTING_PER_WALLET" in (await refused.json())["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0
    assert (await execute(client, inputAmount="1"))["type"] == "market"
    assert (await execute(client, userWallet=OTHER_WALLET, **limit))["status"] == "pending"
    placed = next(r for r in answers if r.status == 201)
    order_id = (await placed.json())["orderId"]
    assert (await client.post(f"/api/orders/{order_id}/cancel")).status == 200
    again = await client.post("/api/orders/execute", json={**_body(), **limit})
    assert again.status == 202, await again.text()


def _body() -> dict[str, Any]:
    return {"userWallet": WALLET, "inputToken": "SOL", "outputToken": "USDC"}


async def test_a_resting_order_socket_gets_the_price_at_most_once_a_second(
    start_app: AppClient,
) -> None:
    """While it rests, the order's socket gets `price` messages (no seq), spaced by a
    second at least, with the price walking; none after the cancel that ends it."""
    client = await start_app(price_walk_interval_ms=20, price_walk_volatility_bps=20)
    order = await execute(client, type="limit", limitPrice="1000", inputAmount="1")
    ws = await client.ws_connect(f"/ws/orders/{order['orderId']}")
    prices: list[tuple[float, dict[str, Any]]] = []
    statuses: list[str] = []
    async with asyncio.timeout(10):
        while len(prices) < 3:
            message = await ws.receive_json()
            if message["type"] == "price":
                prices.append((time.monotonic(), message))
            else:
                statuses.append(message["status"])
    assert statuses == RESTED
    for _, message in prices:
        assert message.keys() == {"type", "orderId", "price", "timestamp"}
        assert message["orderId"] == order["orderId"]
        assert Decimal("140") < Decimal(message["price"]) < Decimal("160")
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(prices)]
    assert min(gaps) >= 0.95, gaps
    assert (await client.post(f"/api/orders/{order['orderId']}/cancel")).status == 200
    rest = [msg.json() async for msg in ws]
    assert [m["type"] for m in rest] == ["status"]
    assert rest[0]["status"] == "cancelled"


async def test_a_cancel_and_a_firing_at_once_have_exactly_one_winner(
    client: Client, db: asyncpg.Connection
) -> None:
    """Orders that a launch fires are cancelled one after the other around the launch:
    each one is either cancelled (200) and never routed, or fired (the cancel gets 409)
    and confirmed; never both, never neither."""
    orders = [
        await execute(
            client,
            type="limit",
            inputToken="RAY",
            outputToken="USDC",
            inputAmount="5",
            limitPrice="2.5",
        )
        for _ in range(30)
    ]
    for order in orders:
        await until_status(client, order["orderId"], "waiting")

    async def cancel(index: int, order_id: str) -> int:
        await asyncio.sleep(index * 0.004)
        return (await client.post(f"/api/orders/{order_id}/cancel")).status

    launched = asyncio.create_task(launch(client, RAY_AT_3))
    cancels = await asyncio.gather(*(cancel(i, o["orderId"]) for i, o in enumerate(orders)))
    await launched
    for order, status in zip(orders, cancels, strict=True):
        statuses = [m["status"] for m in await follow_statuses(client, order["orderId"])]
        if status == 200:
            assert statuses == [*RESTED, "cancelled"]
        else:
            assert status == 409
            assert statuses == RESTED + FIRED
    sent = await db.fetchval("SELECT count(*) FROM chain_transactions WHERE slot > 0")
    assert sent == cancels.count(409)


async def test_in_postgres_a_claim_and_a_cancel_of_each_order_have_one_winner(
    db_url: str, store: OrderStore, db: asyncpg.Connection
) -> None:
    """The watcher's claim (`waiting` → `routing`, only from `waiting`) and cancels from
    another process, on connections of their own, for the same 200 orders at the same
    moment, asked for in opposite orders: every order commits exactly one of the two, and
    neither batch deadlocks with the other (each locks its rows by order id)."""
    route = Route(DIRECT, (QUOTE,), QUOTE.amount_out)
    orders = []
    for _ in range(200):
        order, _ = await store.insert_order(LIMIT, queued=True)
        await store.transition(order.id, OrderStatus.WAITING, Waiting(expires_at=None, slot=1))
        orders.append(order.id)
    canceller = OrderStore(await create_pool(db_url, min_size=1, max_size=2, command_timeout=10))
    claims = [
        store.transition(
            order_id,
            OrderStatus.ROUTING,
            Routed(quotes=(QUOTE,), route=route),
            Changes(route=route, dex=route.dex, attempts=1),
            only_from=OrderStatus.WAITING,
        )
        for order_id in orders
    ]
    cancels = [
        canceller.transition(order_id, OrderStatus.CANCELLED, Cancelled(reason="race"))
        for order_id in reversed(orders)
    ]
    results = await asyncio.gather(*claims, *cancels, return_exceptions=True)
    claimed, cancelled = results[:200], list(reversed(results[200:]))
    for claim, cancel in zip(claimed, cancelled, strict=True):
        assert isinstance(claim, tuple | StatusConflict), claim
        assert isinstance(cancel, tuple | StatusConflict), cancel
        assert isinstance(claim, StatusConflict) != isinstance(cancel, StatusConflict)
        assert not isinstance(claim, StatusConflict) or claim.current is OrderStatus.CANCELLED
    rows = await db.fetch(
        "SELECT o.status, array_agg(e.status ORDER BY e.seq) AS events FROM orders o "
        "JOIN order_events e ON e.order_id = o.id GROUP BY o.id"
    )
    assert {(r["status"], tuple(r["events"][2:])) for r in rows} <= {
        ("routing", ("routing",)),
        ("cancelled", ("cancelled",)),
    }


async def test_a_limit_order_whose_price_moved_away_before_its_swap_fails_slippage(
    client: Client, db: asyncpg.Connection
) -> None:
    """Fired on a route paying 1 % more than the pool pays by the time its swap lands, a
    limit order fails `slippage_exceeded`: its minAmountOut is inputAmount times limitPrice
    whatever the slippage tolerance, and it does not go back to resting."""
    app = client.app
    store, router = OrderStore(app[DB_POOL], hub=app[HUB]), app[ROUTER]
    new = attrs.evolve(LIMIT, input_amount=Decimal(2), slippage_bps=5000)
    now = await router.route(TOKENS["SOL"], TOKENS["USDC"], new.input_amount)
    # At firing, the route paid 1 % more than now; the limit is what that paid.
    then = attrs.evolve(
        now.route, amount_out=TOKENS["USDC"].round_down(now.route.amount_out * Decimal("1.01"))
    )
    limit_price = price_of(new.input_amount, then.amount_out)
    new = attrs.evolve(new, limit_price=limit_price)
    order, _ = await store.insert_order(new, queued=False)
    await store.transition(order.id, OrderStatus.WAITING, Waiting(expires_at=None, slot=1))
    await store.transition(
        order.id,
        OrderStatus.ROUTING,
        Routed(quotes=now.quotes, route=then),
        Changes(route=then, dex=then.dex, quoted_amount_out=then.amount_out, attempts=1),
        only_from=OrderStatus.WAITING,
    )
    await app[QUEUE].enqueue(order.id)
    messages = await follow_statuses(client, str(order.id))
    assert [m["status"] for m in messages] == [
        *RESTED,
        "routing",
        "building",
        "submitted",
        "failed",
    ]
    floor = limit_amount_out(new.input_amount, limit_price, TOKENS["USDC"])
    assert Decimal(messages[3]["data"]["minAmountOut"]) == floor
    assert messages[-1]["data"]["code"] == "slippage_exceeded"
    landed = "SELECT count(*) FROM chain_transactions WHERE order_id = $1 AND status = 'landed'"
    assert await db.fetchval(landed, order.id) == 0


async def test_a_limit_already_reached_fires_at_once_with_the_slippage_floor_above_it(
    client: Client,
) -> None:
    """Created first and executed later, a limit order whose price is there already fires
    in the next slot; with its limit far below the quote, the slippage floor bounds it."""
    resp = await client.post(
        "/api/orders", json={**_body(), "type": "limit", "limitPrice": "100", "inputAmount": "1"}
    )
    assert resp.status == 201
    order = await resp.json()
    assert order["status"] == "pending"
    assert (await client.post(f"/api/orders/{order['orderId']}/execute")).status == 202
    messages = await follow_statuses(client, order["orderId"])
    assert [m["status"] for m in messages] == RESTED + FIRED
    quoted = Decimal(messages[2]["data"]["route"]["amountOut"])
    assert Decimal(messages[3]["data"]["minAmountOut"]) == min_amount_out(
        quoted, 50, TOKENS["USDC"]
    )


async def test_a_sniper_with_a_limit_waits_after_its_launch_until_the_price_suits_it(
    client: Client,
) -> None:
    """Its pool launches at 20,000 POPCAT a SOL; it wants 30,000 at least, so it rests on
    until a second pool, on the other DEX, offers that."""
    order = await execute(
        client, type="sniper", outputToken="POPCAT", inputAmount="0.1", limitPrice="30000"
    )
    await until_status(client, order["orderId"], "waiting")
    pool = {"tokenA": "POPCAT", "tokenB": "SOL", "reserveB": "250"}
    await launch(client, {**pool, "dex": "raydium", "reserveA": "5000000"})
    await launch(client, {**pool, "dex": "raydium", "tokenA": "MEW", "reserveA": "1000"})
    current = await (await client.get(f"/api/orders/{order['orderId']}")).json()
    assert current["status"] == "waiting"
    await launch(client, {**pool, "dex": "meteora", "reserveA": "10000000"})
    messages = await follow_statuses(client, order["orderId"])
    assert [m["status"] for m in messages] == RESTED + FIRED
    assert Decimal(messages[-1]["data"]["executedPrice"]) >= 30000


async def test_a_process_alone_looks_for_changes_made_elsewhere_once_a_second(
    client: Client, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone on the market and with no limit or sniper order changed here, the watcher
    asks Postgres what changed at most once every CATCH_UP_EVERY_S, not after every slot
    (10 ms here); a limit order another writer makes rest meanwhile is still found by
    that look, and fires."""
    app = client.app
    await app[HUB].check_peers()
    assert not app[HUB].relaying
    looks: list[float] = []
    look = OrderStore.resting_changes

    async def counted(self: OrderStore, horizon: int) -> Any:
        looks.append(time.monotonic())
        return await look(self, horizon)

    monkeypatch.setattr(OrderStore, "resting_changes", counted)
    chain = app[CHAIN_CLIENT]
    started = time.monotonic()
    # 200 slots with nothing to look for: the measure is how often it looks meanwhile.
    await chain.wait_for_slot(chain.slot + 200)
    allowed = (time.monotonic() - started) / CATCH_UP_EVERY_S + 2
    assert len(looks) <= allowed, (len(looks), allowed)
    other = OrderStore(await create_pool(db_url, min_size=1, max_size=2, command_timeout=10))
    order, _ = await other.insert_order(attrs.evolve(LIMIT, limit_price=Decimal(1)), queued=False)
    await other.transition(order.id, OrderStatus.WAITING, Waiting(expires_at=None, slot=1))
    await until_status(client, str(order.id), "confirmed")
