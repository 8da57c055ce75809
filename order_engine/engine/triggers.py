"""The trigger watcher: fires resting limit and sniper orders, and expires them.

It runs in the process that produces the chain's slots, after each slot it closes: that
process sees each slot first, and the index of resting orders lives in one place. A slot
that follows another process's (a gap in the numbers), or the first one, makes it build
the index again from Postgres; a process that stops producing slots drops its index.

Each pass: catch up with what changed in Postgres since the last one (orders that began
resting, orders cancelled), take out what the slot's launches and prices may fire and
what reached its deadline, check each candidate exactly (the router's best route on the
slot's prices, against its limit), and fire the ones that pass. Firing is the
conditional UPDATE `waiting` → `routing` with the route found, then a queue entry: the
worker carries on from `routing`. The UPDATE is the claim, so an order fires once, and
exactly one of a firing and a cancel (or an expiry) wins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar, cast

import attrs
from redis.exceptions import RedisError

from order_engine.chain.client import ChainClient
from order_engine.chain.model import SlotSummary
from order_engine.domain.errors import OrderNotFound, StatusConflict
from order_engine.domain.events import Expired, OrderEvent, Routed
from order_engine.domain.orders import Changes, Order, OrderStatus, OrderType, RestingOrder
from order_engine.domain.routes import price_of
from order_engine.engine.book import TriggerIndex
from order_engine.outage import DEPENDENCY_ERRORS
from order_engine.queue import OrderQueue
from order_engine.routing.router import (
    NoRoute,
    QuotesUnavailable,
    Router,
    RoutingDecision,
    limit_amount_out,
)
from order_engine.routing.tokens import TOKENS
from order_engine.store.orders import OrderStore

log = logging.getLogger(__name__)

T = TypeVar("T")

# Candidates checked at once: the loop gets a turn between two groups, so that a slot
# that fires thousands of orders does not hold up the rest of the process for long.
CHECK_GROUP = 500
# How long a process alone may go without asking Postgres what changed, when it has
# changed no limit or sniper order itself: a safety net for a change made elsewhere.
CATCH_UP_EVERY_S = 1.0


async def _settled(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """Every result once all have ended, or the first failure once all have ended: none
    still runs (and touches the index) when a failed pass is left to a rebuild."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


@attrs.frozen
class Pass:
    """One pass of the watcher over the index, after one slot."""

    slot: int
    resting: int
    """Orders in the index after the pass."""
    candidates: int
    """Orders the slot's prices and launches may have fired, checked exactly."""
    fired: int
    expired: int
    check_s: float
    """From the start of the pass to the last candidate's decision, firings not included."""
    total_s: float
    rebuilt: bool


class TriggerWatcher:
    def __init__(
        self,
        store: OrderStore,
        queue: OrderQueue,
        router: Router,
        chain: ChainClient,
        *,
        idle_after_s: float,
        alone: Callable[[], bool],
        on_pass: Callable[[Pass], None] | None = None,
    ) -> None:
        """`alone`: whether no other process shares the market (the hub relays to none);
        then only this process's own changes, told to `order_changed`, are looked for
        after every slot."""
        self._store = store
        self._queue = queue
        self._router = router
        self._chain = chain
        self._idle_after_s = idle_after_s
        self._on_pass = on_pass
        self.index = TriggerIndex()
        self._stale = True
        self._horizon = 0
        self._slot = -1
        self._launches: list[tuple[tuple[str, str], int]] = []
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._alone = alone
        self._changed = True
        self._caught_up_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def slot_closed(self, summary: SlotSummary) -> None:
        """Told of every slot this process closes. One that does not follow the last one
        seen means another process produced slots in between: the index is rebuilt."""
        if summary.slot != self._slot + 1:
            self._stale = True
        self._slot = summary.slot
        self._launches += [((p.token_a, p.token_b), summary.slot) for p in summary.launched]
        self._wake.set()

    def order_changed(self, order: Order, event: OrderEvent, since: datetime | None) -> None:
        """Told of every change this process commits (the store's observer); one of a
        limit or sniper order is looked for in Postgres after the next slot."""
        if order.type.rests:
            self._changed = True

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="trigger-watcher")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), self._idle_after_s)
            except TimeoutError:
                if len(self.index):
                    log.info(
                        "no slot produced here lately: dropping %d resting orders", len(self.index)
                    )
                self.index = TriggerIndex()
                self._stale = True
                continue
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                await self.run_once()
            except DEPENDENCY_ERRORS as exc:
                log.warning("trigger pass failed, the index is rebuilt next: %r", exc)
                self._stale = True
            except Exception:
                log.exception("trigger pass failed, the index is rebuilt next")
                self._stale = True

    async def rebuild(self) -> None:
        """Load every resting order from Postgres into a new index."""
        launches = await self._chain.launches()
        horizon, resting = await self._store.resting_orders()
        index = TriggerIndex(launches)
        for order in resting:
            index.add(order)
        self.index, self._horizon, self._stale = index, horizon, False
        log.info("trigger index built: %d resting orders", len(index))

    async def _catch_up(self) -> None:
        """Apply what changed in Postgres since the last look: new resting orders in,
        orders that left `waiting` (cancelled) out. Skipped while nothing can have
        changed: this process is alone, changed no such order since, and looked less
        than CATCH_UP_EVERY_S ago (a skipped look is made up by the next, which reads
        from the same horizon)."""
        now = time.monotonic()
        if self._alone() and not self._changed and now - self._caught_up_at < CATCH_UP_EVERY_S:
            return
        # Cleared before the read: a change committed during it is looked for next time.
        self._changed = False
        self._caught_up_at = now
        self._horizon, resting, gone = await self._store.resting_changes(self._horizon)
        for order_id in gone:
            self.index.discard(order_id)
        for order in resting:
            self.index.add(order)

    async def run_once(self) -> Pass:
        """One pass over the index at the slot the chain view is at."""
        started = time.perf_counter()
        slot = self._chain.slot
        launches, self._launches = self._launches, []
        rebuilt = self._stale
        candidates: list[RestingOrder] = []
        if rebuilt:
            await self.rebuild()
        else:
            for tokens, launch_slot in launches:
                for token in tokens:
                    candidates += self.index.launched(token, launch_slot)
            await self._catch_up()
        expired = self.index.expired(time.time())
        # A sniper a launch took out may have reached its deadline too: it expires.
        candidates = [order for order in candidates if order.id in self.index]
        candidates += self.index.due()
        for pair in self.index.pairs():
            price = self._chain.best_price(*pair)
            if price is not None:
                candidates += self.index.crossed(pair, float(price))
        firings: list[asyncio.Task[list[bool]]] = []
        for start in range(0, len(candidates), CHECK_GROUP):
            ready = await self._decide(candidates[start : start + CHECK_GROUP])
            if ready:
                firings.append(asyncio.create_task(self._fire_all(ready)))
        check_s = time.perf_counter() - started
        fired = [ok for group in await _settled(firings) for ok in group]
        ended = await _settled([self._expire(order) for order in expired])
        result = Pass(
            slot=slot,
            resting=len(self.index),
            candidates=len(candidates),
            fired=sum(fired),
            expired=sum(ended),
            check_s=check_s,
            total_s=time.perf_counter() - started,
            rebuilt=rebuilt,
        )
        if result.candidates or result.expired or rebuilt:
            log.info(
                "trigger pass at slot %d: %d resting, %d checked, %d fired, %d expired in "
                "%.1f ms (%.1f ms to decide)%s",
                result.slot,
                result.resting,
                result.candidates,
                result.fired,
                result.expired,
                result.total_s * 1000,
                result.check_s * 1000,
                ", index rebuilt" if rebuilt else "",
            )
        if self._on_pass is not None:
            self._on_pass(result)
        return result

    async def _decide(
        self, group: list[RestingOrder]
    ) -> list[tuple[RestingOrder, RoutingDecision]]:
        """The orders of `group` to fire now, each with its route; the others are put back
        to wait. The orders are routed together (Router.route_many)."""
        routed = await self._router.route_many(
            [(TOKENS[o.input_token], TOKENS[o.output_token], o.input_amount) for o in group]
        )
        ready = []
        for order, decision in zip(group, routed, strict=True):
            if self._passes(order, decision):
                assert isinstance(decision, RoutingDecision)
                ready.append((order, decision))
        return ready

    def _passes(
        self, order: RestingOrder, decision: RoutingDecision | NoRoute | QuotesUnavailable
    ) -> bool:
        """Whether `order` fires on `decision`; if not, it is put back to wait."""
        if isinstance(decision, QuotesUnavailable):
            self.index.check_later(order)
            return False
        if isinstance(decision, NoRoute):
            if order.type is OrderType.SNIPER:
                self.index.wait_for_launch(order)
            else:
                self.index.raise_key(order, best=self._best(order), achieved=0.0)
            return False
        if order.limit_price is None:
            return True
        floor = limit_amount_out(order.input_amount, order.limit_price, TOKENS[order.output_token])
        amount_out = decision.route.amount_out
        if amount_out >= floor:
            return True
        achieved = float(price_of(order.input_amount, amount_out))
        self.index.raise_key(order, best=max(self._best(order), achieved), achieved=achieved)
        return False

    def _best(self, order: RestingOrder) -> float:
        price = self._chain.best_price(*order.pair)
        return 0.0 if price is None else float(price)

    async def _fire_all(self, ready: Iterable[tuple[RestingOrder, RoutingDecision]]) -> list[bool]:
        return await _settled([self._fire(o, d) for o, d in ready])

    async def _fire(self, order: RestingOrder, decision: RoutingDecision) -> bool:
        """Claim the order (`waiting` → `routing`, with its route) and queue it; False if
        it left `waiting` first (cancelled, expired)."""
        route = decision.route
        try:
            await self._store.transition(
                order.id,
                OrderStatus.ROUTING,
                Routed(quotes=decision.quotes, route=route),
                Changes(dex=route.dex, quoted_amount_out=route.amount_out, route=route, attempts=1),
                only_from=OrderStatus.WAITING,
            )
        except (StatusConflict, OrderNotFound):
            return False
        finally:
            self.index.discard(order.id)
        log.info("order %s: fired at slot %d", order.id, self._chain.slot)
        try:
            await self._queue.enqueue(order.id)
        except (RedisError, OSError) as exc:
            # It is routing and queued: the reconciler queues it again once Redis answers.
            log.warning("order %s: fired but not queued: %r", order.id, exc)
        return True

    async def _expire(self, order: RestingOrder) -> bool:
        assert order.expires_at is not None
        try:
            await self._store.transition(
                order.id,
                OrderStatus.EXPIRED,
                Expired(expires_at=order.expires_at),
                only_from=OrderStatus.WAITING,
            )
        except (StatusConflict, OrderNotFound):
            return False
        log.info("order %s: expired", order.id)
        return True
