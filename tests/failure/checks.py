"""What must hold after any crash: every order terminal, its events whole, one swap."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import attrs

from order_engine.domain.orders import OrderStatus, can_transition
from tests.support import order_body

TERMINAL = [s.value for s in OrderStatus if s.is_terminal]


@attrs.define
class Submissions:
    """What the clients saw: ids of orders answered 202, and every HTTP status."""

    accepted: set[str] = attrs.Factory(set)
    statuses: list[int] = attrs.Factory(list)

    @property
    def server_errors(self) -> list[int]:
        return [s for s in self.statuses if s >= 500 and s != 503]


async def submit(session: aiohttp.ClientSession, base_url: str, seen: Submissions) -> None:
    """One order; a refused connection (the server is down) is a submission that
    was never accepted, as it would be for a client."""
    try:
        async with session.post(f"{base_url}/api/orders/execute", json=order_body()) as resp:
            seen.statuses.append(resp.status)
            if resp.status == 202:
                seen.accepted.add((await resp.json())["orderId"])
    except (TimeoutError, aiohttp.ClientConnectionError):
        pass


async def submit_many(base_url: str, count: int, seen: Submissions) -> None:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(submit(session, base_url, seen) for _ in range(count)))


async def wait_all_terminal(db: asyncpg.Connection, *, timeout_s: float = 60) -> None:
    """Until no order in the database is non-terminal (the database is the truth)."""

    async def settled() -> bool:
        left = await db.fetchval(
            "SELECT count(*) FROM orders WHERE status <> ALL($1::text[])", TERMINAL
        )
        return int(left) == 0

    await poll(settled, timeout_s)


async def poll(condition: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    # The orders finish inside another process, which may be killed and replaced: there
    # is no event of ours to await, so the database is polled, with a deadline.
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def wait_healthy(base_url: str, *, timeout_s: float = 30) -> None:
    """Until /health says both dependencies answer, as a client's retry loop would."""
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            async with session.get(f"{base_url}/health") as resp:
                return resp.status == 200

        await poll(healthy, timeout_s)


@attrs.frozen
class Tally:
    accepted: int
    terminal: int
    lost: int
    double_swaps: int
    longest_wait_s: float
    by_status: dict[str, int]

    def line(self, scenario: str) -> str:
        return (
            f"{scenario}: accepted {self.accepted}, terminal {self.terminal}, lost {self.lost},"
            f" double swaps {self.double_swaps}, longest wait between two events of one order"
            f" {self.longest_wait_s:.2f} s, {self.by_status}"
        )


async def check_guarantees(db: asyncpg.Connection, accepted: set[str]) -> Tally:
    """Assert that every order's events are whole and in order and that its swap is
    what it says; count what was accepted, ended, lost and swapped twice."""
    orders = {
        str(r["id"]): r
        for r in await db.fetch(
            "SELECT id, status, failure_code, last_seq, tx_hash, amount_out FROM orders"
        )
    }
    lost = {o for o in accepted if o not in orders or orders[o]["status"] not in TERMINAL}
    events: dict[str, list[Any]] = {}
    for r in await db.fetch(
        "SELECT order_id, seq, status, created_at FROM order_events ORDER BY order_id, seq"
    ):
        events.setdefault(str(r["order_id"]), []).append(r)
    swaps: dict[str, list[Any]] = {}
    for r in await db.fetch(
        "SELECT signature, order_id, amount_out FROM chain_transactions WHERE status = 'landed'"
    ):
        swaps.setdefault(str(r["order_id"]), []).append(r)
    # A transaction still pending could land after its order ended: an order may only end
    # once the fate of everything it sent is known.
    in_flight = await db.fetch(
        """
        SELECT t.order_id FROM chain_transactions t JOIN orders o ON o.id = t.order_id
        WHERE t.status = 'pending' AND o.status = ANY($1::text[])
        """,
        TERMINAL,
    )
    assert in_flight == [], f"terminal orders with transactions still pending: {in_flight}"

    longest = 0.0
    for order_id, order in orders.items():
        status = OrderStatus(order["status"])
        history = events[order_id]
        assert [e["seq"] for e in history] == list(range(1, order["last_seq"] + 1))
        statuses = [OrderStatus(e["status"]) for e in history]
        assert all(a == b or can_transition(a, b) for a, b in itertools.pairwise(statuses))
        assert statuses[-1] is status
        for a, b in itertools.pairwise(history):
            longest = max(longest, (b["created_at"] - a["created_at"]).total_seconds())
        on_chain = swaps.get(order_id, [])
        assert len(on_chain) <= 1, f"order {order_id} swapped {len(on_chain)} times"
        if status is OrderStatus.CONFIRMED:
            # What the order says happened is what the chain says happened.
            assert [(s["signature"], s["amount_out"]) for s in on_chain] == [
                (order["tx_hash"], order["amount_out"])
            ]
        else:
            assert on_chain == [], f"order {order_id} is {status} but its swap went through"

    by_status: dict[str, int] = {}
    for order in orders.values():
        key = ":".join(filter(None, [order["status"], order["failure_code"]]))
        by_status[key] = by_status.get(key, 0) + 1
    return Tally(
        accepted=len(accepted),
        terminal=len(accepted) - len(lost),
        lost=len(lost),
        double_swaps=sum(1 for s in swaps.values() if len(s) > 1),
        longest_wait_s=longest,
        by_status=dict(sorted(by_status.items())),
    )
