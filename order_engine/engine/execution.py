"""One order's trip through the state machine, resumable from whatever status it is in.

Each step reads what the previous one persisted, so an order picked up again after a
crash carries on from its stored status instead of starting over: a transaction whose
signature is stored is never rebuilt, and a submitted one is looked up on the chain
before anything is sent again.

A transient failure (every DEX failing to quote, a DEX refusing the transaction) is
not a step back: the order stays in its status, an event records the next attempt and
its reason, and the caller schedules that attempt after a backoff. A retry re-quotes;
a transaction the DEX refused is forgotten and a new one built.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from order_engine.domain.errors import StatusConflict
from order_engine.domain.orders import Changes, FailureCode, Order, OrderStatus
from order_engine.engine.retry import RetryPolicy
from order_engine.formats import decimal_str
from order_engine.routing.pools import Quote
from order_engine.routing.router import (
    MULTI_LEG_DEXES,
    TWO_HOP,
    NoRoute,
    QuotesUnavailable,
    Route,
    Router,
    RoutingDecision,
    min_amount_out,
)
from order_engine.routing.tokens import NATIVE_SOL, TOKENS
from order_engine.routing.venues import (
    SlippageExceeded,
    SwapLeg,
    SwapReceipt,
    SwapTransaction,
    Venue,
    VenueUnavailable,
    transaction_signature,
)
from order_engine.store.orders import OrderStore

log = logging.getLogger(__name__)


def quote_data(quote: Quote) -> dict[str, Any]:
    return {
        "dex": quote.dex,
        "amountOut": decimal_str(quote.amount_out),
        "price": decimal_str(quote.price),
        "feeBps": quote.fee_bps,
        "priceImpactBps": decimal_str(quote.price_impact_bps),
        "fee": decimal_str(quote.fee),
    }


def route_data(route: Route) -> dict[str, Any]:
    """API.md's route, with its kind and the native SOL wrapped before and unwrapped after."""
    first, last = route.legs[0], route.legs[-1]
    return {
        "kind": route.kind,
        "amountOut": decimal_str(route.amount_out),
        "legs": [
            {
                "dex": q.dex,
                "inputToken": q.input_token,
                "outputToken": q.output_token,
                "inputAmount": decimal_str(q.input_amount),
                "amountOut": decimal_str(q.amount_out),
                "feeBps": q.fee_bps,
                "priceImpactBps": decimal_str(q.price_impact_bps),
            }
            for q in route.legs
        ],
        "wrapSol": decimal_str(route.input_amount) if first.input_token == NATIVE_SOL else None,
        "unwrapSol": decimal_str(route.amount_out) if last.output_token == NATIVE_SOL else None,
    }


@attrs.frozen
class Outcome:
    """Where one run left the order: terminal, or waiting `retry_in_s` for its next
    attempt; `order` is None when no such order exists."""

    order: Order | None
    retry_in_s: float | None = None


class _Transient(Exception):
    def __init__(self, code: FailureCode, reason: str, *, forget_tx: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.forget_tx = forget_tx


class Executor:
    def __init__(
        self,
        store: OrderStore,
        router: Router,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._router = router
        self._venues = router.venues
        self._retry = retry or RetryPolicy()
        self._rng = rng or random.Random()

    async def run(self, order_id: uuid.UUID) -> Outcome:
        """Drive the order until it is terminal or waits for a retry."""
        order = await self._store.get_order(order_id)
        # An order read from the store may have been left mid-step by an earlier run; one
        # this run moved is known to be where this run put it.
        resumed = True
        while order is not None and not order.status.is_terminal:
            try:
                try:
                    order = await self._step(order, resumed=resumed)
                    resumed = False
                except _Transient as exc:
                    return await self._after_transient(order, exc)
            except StatusConflict as exc:
                # Someone else moved the order (a cancel, another delivery): go on from
                # what it is now.
                log.info("order %s: %s", order.id, exc)
                order = await self._store.get_order(order_id)
                resumed = True
        return Outcome(order)

    async def abandon(self, order_id: uuid.UUID, reason: str) -> Order | None:
        """End an order that cannot be run (its entry was dead-lettered): failed with
        `dead_lettered`, unless the chain shows its swap went through."""
        order = await self._store.get_order(order_id)
        while order is not None and not order.status.is_terminal:
            try:
                receipt = None
                if order.status is OrderStatus.SUBMITTED and order.tx_hash is not None:
                    venue, tx = await self._transaction(order)
                    receipt = venue and await venue.find_swap(tx.signature)
                if receipt:
                    return await self._confirm(order, receipt)
                return await self._fail(order, FailureCode.DEAD_LETTERED, reason)
            except StatusConflict:
                order = await self._store.get_order(order_id)
        return order

    async def _step(self, order: Order, *, resumed: bool) -> Order:
        match order.status:
            case OrderStatus.PENDING:
                return await self._route(order)
            case OrderStatus.ROUTING:
                return await self._build(order)
            case OrderStatus.BUILDING:
                return await self._move(
                    order, OrderStatus.SUBMITTED, data={"txHash": order.tx_hash}
                )
            case OrderStatus.SUBMITTED if order.tx_hash is None:
                return await self._rebuild(order)
            case OrderStatus.SUBMITTED:
                return await self._settle(order, resumed=resumed)
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
            order.id,
            order.status,
            Changes(attempts=attempt + 1, forget_tx=exc.forget_tx),
            {
                "attempt": attempt + 1,
                "code": exc.code.value,
                "reason": exc.reason,
                "retryInMs": round(delay * 1000),
            },
        )
        return Outcome(waiting, retry_in_s=delay)

    async def _move(
        self,
        order: Order,
        status: OrderStatus,
        changes: Changes = Changes(),
        data: Mapping[str, Any] | None = None,
    ) -> Order:
        moved, _ = await self._store.transition(
            order.id, status, changes, data, since=order.updated_at
        )
        log.info("order %s: %s -> %s", order.id, order.status, status)
        return moved

    async def _fail(self, order: Order, code: FailureCode, reason: str) -> Order:
        attempt = max(order.attempts, 1)
        return await self._move(
            order,
            OrderStatus.FAILED,
            Changes(failure_code=code.value, failure_reason=reason, attempts=attempt),
            {"code": code.value, "reason": reason, "attempt": attempt},
        )

    async def _decide(self, order: Order) -> RoutingDecision:
        src, dst = TOKENS[order.input_token], TOKENS[order.output_token]
        try:
            return await self._router.route(src, dst, order.input_amount)
        except QuotesUnavailable as exc:
            raise _Transient(FailureCode.DEX_ERROR, str(exc)) from exc

    def _routing_data(self, order: Order, decision: RoutingDecision) -> dict[str, Any]:
        route = decision.route
        data: dict[str, Any] = {
            "quotes": [quote_data(q) for q in decision.quotes],
            "dex": route.dex,
            "route": route_data(route),
        }
        if order.attempts > 1:
            data["attempt"] = order.attempts
        return data

    async def _route(self, order: Order) -> Order:
        try:
            decision = await self._decide(order)
        except NoRoute as exc:
            return await self._fail(order, FailureCode.NO_ROUTE, str(exc))
        route = decision.route
        return await self._move(
            order,
            OrderStatus.ROUTING,
            Changes(
                dex=route.dex,
                quoted_amount_out=route.amount_out,
                attempts=max(order.attempts, 1),
            ),
            self._routing_data(order, decision),
        )

    def _minimum(self, order: Order, quoted: Decimal) -> Decimal:
        return min_amount_out(quoted, order.slippage_bps, TOKENS[order.output_token])

    async def _stored_legs(self, order: Order) -> tuple[SwapLeg, ...]:
        """The legs of the order's split or two-hop route, from the latest event that
        chose a route (routing, or the rebuild of a retry): stored before the swap is
        built, so a resumed order sends the same route."""
        events = await self._store.list_events(order.id)
        route = next(e.data["route"] for e in reversed(events) if "route" in e.data)
        return tuple(
            SwapLeg(
                leg["dex"],
                leg["inputToken"],
                leg["outputToken"],
                # A path's second hop spends whatever the first one pays out.
                None if route["kind"] == TWO_HOP and i > 0 else Decimal(leg["inputAmount"]),
            )
            for i, leg in enumerate(route["legs"])
        )

    async def _build(self, order: Order) -> Order:
        assert order.dex is not None
        assert order.quoted_amount_out is not None
        minimum = self._minimum(order, order.quoted_amount_out)
        signature = transaction_signature(
            order.id, order.dex, order.input_amount, minimum, order.attempts
        )
        # The signature is stored before the transaction is sent, so that after a crash
        # the chain can be asked about it instead of sending a second swap.
        return await self._move(
            order,
            OrderStatus.BUILDING,
            Changes(min_amount_out=minimum, tx_hash=signature),
            {"dex": order.dex, "minAmountOut": decimal_str(minimum)},
        )

    async def _rebuild(self, order: Order) -> Order:
        """A retry of a transaction the DEX refused: quote again and build a new one,
        stored (like the first) before it is sent."""
        try:
            decision = await self._decide(order)
        except NoRoute as exc:
            return await self._fail(order, FailureCode.NO_ROUTE, str(exc))
        route = decision.route
        minimum = self._minimum(order, route.amount_out)
        signature = transaction_signature(
            order.id, route.dex, order.input_amount, minimum, order.attempts
        )
        rebuilt, _ = await self._store.record(
            order.id,
            OrderStatus.SUBMITTED,
            Changes(
                dex=route.dex,
                quoted_amount_out=route.amount_out,
                min_amount_out=minimum,
                tx_hash=signature,
            ),
            {
                **self._routing_data(order, decision),
                "minAmountOut": decimal_str(minimum),
                "txHash": signature,
            },
        )
        return rebuilt

    async def _transaction(self, order: Order) -> tuple[Venue | None, SwapTransaction]:
        """The order's stored transaction, and the venue it is (or was) sent through."""
        assert order.dex is not None
        assert order.tx_hash is not None
        assert order.min_amount_out is not None
        legs = await self._stored_legs(order) if order.dex in MULTI_LEG_DEXES else ()
        # A route over several pools is one transaction, sent through its first leg's DEX.
        venue = self._venues.get(legs[0].dex if legs else order.dex)
        tx = SwapTransaction(
            signature=order.tx_hash,
            order_id=order.id,
            dex=order.dex,
            input_token=order.input_token,
            output_token=order.output_token,
            input_amount=order.input_amount,
            min_amount_out=order.min_amount_out,
            legs=legs,
        )
        return venue, tx

    async def _settle(self, order: Order, *, resumed: bool) -> Order:
        """Send the stored transaction. An order found in `submitted` when this run began
        may have been sent by a run that crashed: the chain is asked about its signature
        first. One that this run moved to `submitted` was never sent."""
        venue, tx = await self._transaction(order)
        if venue is None:
            return await self._fail(order, FailureCode.DEX_ERROR, f"unknown dex {order.dex}")
        try:
            receipt = (resumed and await venue.find_swap(tx.signature)) or await venue.execute(tx)
        except SlippageExceeded as exc:
            return await self._fail(order, FailureCode.SLIPPAGE_EXCEEDED, str(exc))
        except VenueUnavailable as exc:
            raise _Transient(FailureCode.DEX_ERROR, str(exc), forget_tx=True) from exc
        return await self._confirm(order, receipt)

    async def _confirm(self, order: Order, receipt: SwapReceipt) -> Order:
        # The receipt's signature, not the order's: if the chain already settled this
        # order under an earlier transaction, that one is what happened.
        return await self._move(
            order,
            OrderStatus.CONFIRMED,
            Changes(
                tx_hash=receipt.signature,
                amount_out=receipt.amount_out,
                executed_price=receipt.executed_price,
            ),
            {
                "txHash": receipt.signature,
                "amountOut": decimal_str(receipt.amount_out),
                "executedPrice": decimal_str(receipt.executed_price),
            },
        )
