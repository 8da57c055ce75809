"""One order's trip through the state machine, resumable from whatever status it is in.

Each step reads what the previous one persisted, so an order picked up again after a
crash carries on from its stored status instead of starting over. The route is stored
with the transaction's signature and slot (`routing`, `building` and `submitted` commit
together, before it is sent), so the same transaction can be sent again after a crash:
the chain knows it by its signature and never runs it twice, and one that can no longer
land is reported expired, which is what makes building a new one safe.

A transient failure (every DEX failing to quote, a DEX refusing the transaction, a
transaction that expired) is not a step back: the order stays in its status, an event
records the next attempt and its reason, and the caller schedules that attempt after a
backoff. A retry re-quotes and builds a new transaction.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import uuid
from decimal import Decimal
from typing import Any

import attrs

from order_engine.chain.client import ChainClient
from order_engine.chain.model import Transaction, TxFailure, TxOutcome, TxStatus, build_transaction
from order_engine.domain.errors import StatusConflict
from order_engine.domain.events import (
    Built,
    Confirmed,
    EventData,
    Failed,
    RetryScheduled,
    Routed,
    Submitted,
    Waiting,
)
from order_engine.domain.orders import Changes, FailureCode, Order, OrderStatus, OrderType
from order_engine.domain.routes import Route, RouteAsk
from order_engine.engine.retry import RetryPolicy
from order_engine.routing.router import (
    NoRoute,
    QuotesUnavailable,
    RouteBatcher,
    Router,
    RoutingDecision,
    limit_amount_out,
    min_amount_out,
)
from order_engine.routing.tokens import TOKENS
from order_engine.store.orders import OrderStore

log = logging.getLogger(__name__)


@attrs.frozen
class Outcome:
    """Where one run left the order: terminal, or waiting `retry_in_s` for its next
    attempt; `order` is None when no such order exists."""

    order: Order | None
    retry_in_s: float | None = None


# The share of a routing's least time that the order's lock and read may spend gathering
# into batches beside it; the rest covers their own round trips.
SPARE_SHARE = 0.25


@attrs.frozen
class HeadStart:
    """What a run can begin before it holds the order's lock: reading the order and, when
    its queue entry says what it asks the router, routing it. The run routes with
    `decision` only if the order, as read, still asks for exactly that."""

    order: asyncio.Future[Order | None]
    ask: RouteAsk | None = None
    decision: asyncio.Future[RoutingDecision] | None = None
    spare_s: float = 0.0
    """How long the lock and the read may take without delaying the run."""

    def cancel(self) -> None:
        """Drop what was begun and is not wanted: the lock was not taken, or the run is
        past its first step."""
        _drop(self.order)
        if self.decision is not None:
            _drop(self.decision)


def _drop(future: asyncio.Future[Any]) -> None:
    """Cancel work that is no longer wanted; its failure, if it fails first, is not worth
    a warning."""
    future.cancel()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())


class _Transient(Exception):
    def __init__(
        self, code: FailureCode, reason: str, order: Order, *, forget_tx: bool = False
    ) -> None:
        """`order`: the order as it stands when the failure is known."""
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.order = order
        self.forget_tx = forget_tx


class Executor:
    def __init__(
        self,
        store: OrderStore,
        router: Router,
        chain: ChainClient,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._routes = RouteBatcher(router)
        self._chain = chain
        self._retry = retry or RetryPolicy()
        self._rng = rng or random.Random()

    def head_start(self, order_id: uuid.UUID, ask: RouteAsk | None = None) -> HeadStart:
        """Start reading the order and, given what it asks the router, routing it, while
        the caller takes the order's lock: the round trips and the quotes overlap."""
        if ask is None or ask.input_token not in TOKENS or ask.output_token not in TOKENS:
            return HeadStart(self._store.read_soon(order_id))
        src, dst = TOKENS[ask.input_token], TOKENS[ask.output_token]
        routing = self._routes.submit(src, dst, ask.input_amount)
        spare_s = self._routes.least_s * SPARE_SHARE
        return HeadStart(self._store.read_soon(order_id, within_s=spare_s), ask, routing, spare_s)

    async def run(self, order_id: uuid.UUID, *, head_start: HeadStart | None = None) -> Outcome:
        """Drive the order until it is terminal, rests (`waiting`: the trigger watcher
        fires it) or waits for a retry. `head_start`: the order's read and routing begun
        already, perhaps before this run took its lock; a stale read ends in a status
        conflict, after which the order is read again."""
        first = head_start
        try:
            order = await (self._store.get_order(order_id) if first is None else first.order)
            while (
                order is not None
                and not order.status.is_terminal
                and order.status is not OrderStatus.WAITING
            ):
                try:
                    try:
                        order = await self._step(order, first)
                    except _Transient as exc:
                        return await self._after_transient(exc.order, exc)
                except StatusConflict as exc:
                    # Someone else moved the order (a cancel, another delivery): go on
                    # from what it is now.
                    log.info("order %s: %s", order.id, exc)
                    order = await self._store.get_order(order_id)
                if first is not None:
                    # Quotes are good for the first step only: a later one asks again.
                    first.cancel()
                    first = None
            return Outcome(order)
        finally:
            if first is not None:
                first.cancel()

    async def abandon(self, order_id: uuid.UUID, reason: str) -> Order | None:
        """End an order that cannot be run (its entry was dead-lettered): failed with
        `dead_lettered`, unless the chain shows its swap went through."""
        order = await self._store.get_order(order_id)
        while order is not None and not order.status.is_terminal:
            try:
                # Only a submitted transaction may have reached the chain; its fate is
                # waited for (it lands, fails or expires), never guessed.
                if order.status is OrderStatus.SUBMITTED and order.tx_hash is not None:
                    outcome = await self._sent_outcome(order, order.tx_hash)
                    if outcome is not None and outcome.status is TxStatus.LANDED:
                        return await self._confirm(order, outcome)
                return await self._fail(order, FailureCode.DEAD_LETTERED, reason)
            except StatusConflict:
                order = await self._store.get_order(order_id)
        return order

    async def _sent_outcome(self, order: Order, signature: str) -> TxOutcome | None:
        """The final outcome of the order's stored transaction; for one stored before
        orders kept their route and slot (it cannot be rebuilt), what the chain knows of
        its signature."""
        if order.route is None or order.tx_slot is None:
            return await self._chain.find(signature)
        return await self._chain.outcome(self._transaction(order))

    async def _step(self, order: Order, head_start: HeadStart | None = None) -> Order:
        match order.status:
            case OrderStatus.PENDING if order.type.rests:
                return await self._rest(order)
            case OrderStatus.PENDING:
                return await self._route(order, head_start)
            case OrderStatus.ROUTING:
                return await self._build(order)
            case OrderStatus.BUILDING:
                return await self._submit(order, self._transaction(order))
            case OrderStatus.SUBMITTED if order.tx_hash is None:
                return await self._rebuild(order)
            case OrderStatus.SUBMITTED:
                return await self._settle(order)
        raise AssertionError(f"no step leads on from {order.status}")

    async def _after_transient(self, order: Order, exc: _Transient) -> Outcome:
        attempt = max(order.attempts, 1)
        if not self._retry.allows(attempt):
            return Outcome(await self._fail(order, exc.code, exc.reason))
        delay = self._retry.delay_s(attempt, self._rng)
        log.warning(
            "order %s: attempt %d failed (%s); attempt %d in %.2fs",
            order.id,
            attempt,
            exc.reason,
            attempt + 1,
            delay,
        )
        waiting, _ = await self._store.record(
            order,
            order.status,
            RetryScheduled(
                attempt=attempt + 1,
                code=exc.code.value,
                reason=exc.reason,
                retry_in_ms=round(delay * 1000),
            ),
            Changes(attempts=attempt + 1, forget_tx=exc.forget_tx),
        )
        return Outcome(waiting, retry_in_s=delay)

    async def _move(
        self, order: Order, status: OrderStatus, data: EventData, changes: Changes = Changes()
    ) -> Order:
        moved, _ = await self._store.transition(
            order, status, data, changes, since=order.updated_at
        )
        log.info("order %s: %s -> %s", order.id, order.status, status)
        return moved

    async def _fail(self, order: Order, code: FailureCode, reason: str) -> Order:
        attempt = max(order.attempts, 1)
        return await self._move(
            order,
            OrderStatus.FAILED,
            Failed(code=code.value, reason=reason, attempt=attempt),
            Changes(failure_code=code.value, failure_reason=reason, attempts=attempt),
        )

    async def _decide(self, order: Order, head_start: HeadStart | None = None) -> RoutingDecision:
        src, dst = TOKENS[order.input_token], TOKENS[order.output_token]
        try:
            if (
                head_start is not None
                and head_start.decision is not None
                and head_start.ask == order.ask
            ):
                return await head_start.decision
            return await self._routes.route(src, dst, order.input_amount)
        except QuotesUnavailable as exc:
            raise _Transient(FailureCode.DEX_ERROR, str(exc), order) from exc

    def _routed(self, order: Order, decision: RoutingDecision) -> Routed:
        return Routed(
            quotes=decision.quotes,
            route=decision.route,
            attempt=order.attempts if order.attempts > 1 else None,
        )

    async def _route(self, order: Order, head_start: HeadStart | None = None) -> Order:
        """Choose the route, build its transaction and send it: nothing waits between
        the three, so `routing`, `building` and `submitted` are committed together, each
        with its event, before the transaction goes out."""
        try:
            decision = await self._decide(order, head_start)
        except NoRoute as exc:
            return await self._fail(order, FailureCode.NO_ROUTE, str(exc))
        route = decision.route
        tx, built_event, changes = self._built(order, route)
        submitted, _ = await self._store.transition(
            order,
            OrderStatus.SUBMITTED,
            Submitted(tx.signature),
            attrs.evolve(
                changes,
                dex=route.dex,
                quoted_amount_out=route.amount_out,
                route=route,
                attempts=max(order.attempts, 1),
            ),
            since=order.updated_at,
            via=(
                (OrderStatus.ROUTING, self._routed(order, decision)),
                (OrderStatus.BUILDING, built_event),
            ),
        )
        self._log_path(order, OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.SUBMITTED)
        return await self._send(submitted, tx)

    async def _rest(self, order: Order) -> Order:
        """A limit or sniper order begins resting, its trigger in its event."""
        return await self._move(
            order,
            OrderStatus.WAITING,
            Waiting(
                expires_at=order.expires_at,
                slot=self._chain.slot,
                limit_price=order.limit_price,
                price=self._chain.best_price(order.input_token, order.output_token),
                token=order.output_token if order.type is OrderType.SNIPER else None,
            ),
        )

    def _minimum(self, order: Order, quoted: Decimal) -> Decimal:
        """The least the swap may pay: the slippage floor under the quote, and no less
        than the limit for an order that has one."""
        token = TOKENS[order.output_token]
        floor = min_amount_out(quoted, order.slippage_bps, token)
        if order.limit_price is None:
            return floor
        return max(floor, limit_amount_out(order.input_amount, order.limit_price, token))

    def _new_transaction(self, order: Order, route: Route, minimum: Decimal) -> Transaction:
        """A transaction for the route, built at the chain's newest slot."""
        return build_transaction(
            order.id,
            max(order.attempts, 1),
            route.dex,
            order.input_token,
            order.output_token,
            order.input_amount,
            route.swap_legs(),
            minimum,
            self._chain.slot,
        )

    def _transaction(self, order: Order) -> Transaction:
        """The order's stored transaction, rebuilt exactly as it was first built."""
        assert order.route is not None
        assert order.min_amount_out is not None
        assert order.tx_slot is not None
        tx = build_transaction(
            order.id,
            max(order.attempts, 1),
            order.route.dex,
            order.input_token,
            order.output_token,
            order.input_amount,
            order.route.swap_legs(),
            order.min_amount_out,
            order.tx_slot,
        )
        assert tx.signature == order.tx_hash, "a stored transaction rebuilds to its signature"
        return tx

    def _built(self, order: Order, route: Route) -> tuple[Transaction, Built, Changes]:
        """The transaction for `route`, and the event and changes that store it.

        The transaction is stored before it is sent, so that after a crash the same one is
        sent again (the chain runs a signature once) instead of a second swap. It goes out
        as built here; one found in `building` is rebuilt from what was stored."""
        minimum = self._minimum(order, route.amount_out)
        tx = self._new_transaction(order, route, minimum)
        return (
            tx,
            Built(dex=route.dex, min_amount_out=minimum),
            Changes(min_amount_out=minimum, tx_hash=tx.signature, tx_slot=tx.built_slot),
        )

    async def _build(self, order: Order) -> Order:
        """An order routed already (a fired limit or sniper order) gets its transaction,
        committed with `building` and `submitted` before it is sent."""
        assert order.route is not None
        tx, event, changes = self._built(order, order.route)
        submitted, _ = await self._store.transition(
            order,
            OrderStatus.SUBMITTED,
            Submitted(tx.signature),
            changes,
            since=order.updated_at,
            via=((OrderStatus.BUILDING, event),),
        )
        self._log_path(order, OrderStatus.BUILDING, OrderStatus.SUBMITTED)
        return await self._send(submitted, tx)

    @staticmethod
    def _log_path(order: Order, *path: OrderStatus) -> None:
        """One line a hop, as for a step of its own."""
        for before, after in itertools.pairwise((order.status, *path)):
            log.info("order %s: %s -> %s", order.id, before, after)

    async def _submit(self, order: Order, tx: Transaction) -> Order:
        """An order found in `building` (stored by an older engine) is moved on, then
        its stored transaction sent."""
        return await self._send(
            await self._move(order, OrderStatus.SUBMITTED, Submitted(tx.signature)), tx
        )

    async def _send(self, order: Order, tx: Transaction) -> Order:
        """Send the committed transaction and settle the order by its outcome. A crash
        before it went out only sends the same one again: the chain runs a signature once."""
        return await self._settled(order, await self._chain.execute(tx))

    async def _rebuild(self, order: Order) -> Order:
        """A retry of a transaction that did not land: quote again and build a new one,
        stored (like the first) before it is sent."""
        try:
            decision = await self._decide(order)
        except NoRoute as exc:
            return await self._fail(order, FailureCode.NO_ROUTE, str(exc))
        route = decision.route
        minimum = self._minimum(order, route.amount_out)
        tx = self._new_transaction(order, route, minimum)
        rebuilt, _ = await self._store.record(
            order,
            OrderStatus.SUBMITTED,
            attrs.evolve(
                self._routed(order, decision), min_amount_out=minimum, tx_hash=tx.signature
            ),
            Changes(
                dex=route.dex,
                quoted_amount_out=route.amount_out,
                route=route,
                min_amount_out=minimum,
                tx_hash=tx.signature,
                tx_slot=tx.built_slot,
            ),
        )
        return rebuilt

    async def _settle(self, order: Order) -> Order:
        """Send the stored transaction and wait for its outcome. Sending is idempotent: an
        order resumed after a crash sends what it sent before, and the chain answers with
        what became of it."""
        return await self._settled(order, await self._chain.execute(self._transaction(order)))

    async def _settled(self, order: Order, outcome: TxOutcome) -> Order:
        match outcome.status, outcome.failure:
            case TxStatus.LANDED, _:
                return await self._confirm(order, outcome)
            case TxStatus.FAILED, TxFailure.SLIPPAGE:
                return await self._fail(
                    order, FailureCode.SLIPPAGE_EXCEEDED, outcome.reason or "slippage exceeded"
                )
            case TxStatus.FAILED, _:
                raise _Transient(
                    FailureCode.DEX_ERROR,
                    outcome.reason or "the DEX refused",
                    order,
                    forget_tx=True,
                )
            case TxStatus.EXPIRED, _:
                raise _Transient(
                    FailureCode.TX_EXPIRED,
                    f"transaction {outcome.signature} expired before it landed",
                    order,
                    forget_tx=True,
                )
        raise AssertionError(f"no outcome is final as {outcome.status}")

    async def _confirm(self, order: Order, outcome: TxOutcome) -> Order:
        # The outcome's signature, not the order's: they are the same transaction.
        assert outcome.amount_out is not None
        assert outcome.executed_price is not None
        return await self._move(
            order,
            OrderStatus.CONFIRMED,
            Confirmed(
                tx_hash=outcome.signature,
                amount_out=outcome.amount_out,
                executed_price=outcome.executed_price,
            ),
            Changes(
                tx_hash=outcome.signature,
                amount_out=outcome.amount_out,
                executed_price=outcome.executed_price,
            ),
        )
