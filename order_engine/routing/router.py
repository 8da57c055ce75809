"""Finds the best execution: every venue direct, a split across two venues, or a path
through an intermediate token, each quoted by the venues themselves."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import sys
import time
from collections.abc import Sequence
from decimal import Context, Decimal

import attrs

from order_engine.batch import Batcher
from order_engine.domain.routes import DIRECT, SPLIT, TWO_HOP, Quote, Route
from order_engine.routing.pools import BPS
from order_engine.routing.tokens import TOKENS, Token
from order_engine.routing.venues import Venue

log = logging.getLogger(__name__)

# Tokens a path may pass through: the ones nearly every pool is paired with.
HUBS = ("SOL", "USDC", "USDT")
# The share of the order sent to the first venue of a split, tried in these steps.
SPLIT_SHARES = tuple(Decimal(i) / 10 for i in range(1, 10))
# A split is worth its extra quotes only once one venue alone moves the price this much;
# below it the fee, not the depth, decides, and splitting cannot beat the cheaper venue.
SPLIT_MIN_IMPACT_BPS = Decimal(10)


class NoRoute(Exception):
    """No venue quoted the pair: the order cannot be executed."""


class QuotesUnavailable(Exception):
    """No venue quoted, but some failed or timed out rather than lacking a pool: a
    transient failure, worth trying again later."""


@attrs.frozen
class RoutingDecision:
    # One quote per venue for the direct pair (API.md's `quotes`).
    quotes: tuple[Quote, ...]
    # Every route compared; `route` is the one paying most.
    candidates: tuple[Route, ...]
    route: Route


def choose_best(quotes: Sequence[Quote]) -> Quote:
    """The quote paying the most; on a tie, the first venue asked."""
    if not quotes:
        raise NoRoute("no venue quoted")
    return max(quotes, key=lambda q: q.amount_out)


def choose_route(candidates: Sequence[Route]) -> Route:
    """The route paying the most; on a tie the first, so the simpler kinds (listed first) win."""
    if not candidates:
        raise NoRoute("no route quoted")
    return max(candidates, key=lambda r: r.amount_out)


def min_amount_out(quoted: Decimal, slippage_bps: int, token: Token) -> Decimal:
    """The least the swap may pay: the quote less the slippage tolerance, rounded down."""
    return token.round_down(quoted * (BPS - slippage_bps) / BPS)


# Wide enough that an amount times a price is exact before it is rounded to base units.
_EXACT = Context(prec=100)


def limit_amount_out(amount_in: Decimal, limit_price: Decimal, token: Token) -> Decimal:
    """The least a swap of `amount_in` may pay at `limit_price` (output per input): rounded
    up to the output token's base units, so that the limit is never breached."""
    return token.round_up(_EXACT.multiply(amount_in, limit_price))


@attrs.frozen
class _Plan:
    """One swap between the two rounds of `Router.route_many`: what round one found, and
    where its asks of round two start among all of them."""

    src: Token
    dst: Token
    amount: Decimal
    direct: list[Quote]
    best_first: dict[str, Quote]
    start: int
    seconds: int
    """How many of its asks of round two are second hops (the rest are split shares)."""


class Router:
    def __init__(self, venues: Sequence[Venue], *, quote_timeout_s: float) -> None:
        self._venues = list(venues)
        self._quote_timeout_s = quote_timeout_s

    async def _quotes(
        self, asks: Sequence[tuple[Venue, Token, Token, Decimal]], failed: set[str]
    ) -> list[Quote | None]:
        """One answer per ask: the quote, or None if its venue has no pool, pays nothing,
        fails or is too slow. Each venue is asked once for all of its asks, all venues at
        once; one that fails or times out goes into `failed` and is not asked again."""
        results: list[Quote | None] = [None] * len(asks)
        by_venue: dict[str, tuple[Venue, list[int]]] = {}
        for index, (venue, *_) in enumerate(asks):
            by_venue.setdefault(venue.name, (venue, []))[1].append(index)
        # One future a venue (a task if it answers with a coroutine) and one wait with the
        # timeout for all of them: a timeout scope and gather() cost several event-loop
        # lookups a venue, each a getpid() system call on Python 3.11.
        loop = asyncio.get_running_loop()
        tasks: dict[asyncio.Future[list[Quote | None]], tuple[Venue, list[int]]] = {}
        for venue, indexes in by_venue.values():
            answer = asyncio.ensure_future(venue.quotes([asks[i][1:] for i in indexes]), loop=loop)
            tasks[answer] = (venue, indexes)
        if not tasks:
            return results
        done, late = await asyncio.wait(tasks, timeout=self._quote_timeout_s)
        for task in late:
            task.cancel()
            name = tasks[task][0].name
            log.warning("quotes from %s timed out after %ss", name, self._quote_timeout_s)
            failed.add(name)
        if late:
            await asyncio.wait(late)
        for task in done:
            venue, indexes = tasks[task]
            error = asyncio.CancelledError() if task.cancelled() else task.exception()
            if error is not None:
                # One venue failing must not fail the order while another can quote.
                log.error("quotes from %s failed", venue.name, exc_info=error)
                failed.add(venue.name)
                continue
            for index, quote in zip(indexes, task.result(), strict=True):
                results[index] = quote if quote is not None and quote.amount_out > 0 else None
        return results

    async def route(self, src: Token, dst: Token, amount: Decimal) -> RoutingDecision:
        """Raises NoRoute when no venue can quote the pair, QuotesUnavailable when the
        venues that might have failed or timed out."""
        (decision,) = await self.route_many([(src, dst, amount)])
        if isinstance(decision, Exception):
            raise decision
        return decision

    async def route_many(
        self, swaps: Sequence[tuple[Token, Token, Decimal]]
    ) -> list[RoutingDecision | NoRoute | QuotesUnavailable]:
        """`route` for many swaps (source, destination, amount) at once, of one pair or
        several, in the same two rounds: each venue is asked once a round for the quotes
        of them all. Each swap gets its decision, or the NoRoute or QuotesUnavailable
        that `route` would raise."""
        failed: set[str] = set()
        # Round one, all at once: every venue direct, and the first hop to every hub.
        asks: list[tuple[Venue, Token, Token, Decimal]] = []
        firsts: list[tuple[list[Token], int]] = []
        for src, dst, amount in swaps:
            hubs = [TOKENS[h] for h in HUBS if h not in (src.symbol, dst.symbol)]
            firsts.append((hubs, len(asks)))
            asks += [(v, src, dst, amount) for v in self._venues]
            asks += [(v, src, hub, amount) for hub in hubs for v in self._venues]
        results = await self._quotes(asks, failed)
        n_direct = len(self._venues)

        # Round two, all at once: the second hop from the best first hop to each hub,
        # and the split shares if one venue alone would move the price enough.
        live = [v for v in self._venues if v.name not in failed]
        plans = []
        asks = []
        for (src, dst, amount), (hubs, start) in zip(swaps, firsts, strict=True):
            mine = results[start : start + n_direct * (1 + len(hubs))]
            direct = [q for q in mine[:n_direct] if q is not None]
            first_hops = [q for q in mine[n_direct:] if q is not None]
            best_first = {
                hub.symbol: choose_best(hop)
                for hub in hubs
                if (hop := [q for q in first_hops if q.output_token == hub.symbol])
            }
            second_asks = [
                (v, TOKENS[hub], dst, q.amount_out) for hub, q in best_first.items() for v in live
            ]
            split_asks: list[tuple[Venue, Token, Token, Decimal]] = []
            if direct and choose_best(direct).price_impact_bps >= SPLIT_MIN_IMPACT_BPS:
                quoted = [v for v in live if any(q.dex == v.name for q in direct)]
                for a, b in itertools.combinations(quoted, 2):
                    for share in SPLIT_SHARES:
                        part = src.round_down(amount * share)
                        if 0 < part < amount:
                            split_asks += [(a, src, dst, part), (b, src, dst, amount - part)]
            plans.append(_Plan(src, dst, amount, direct, best_first, len(asks), len(second_asks)))
            asks += second_asks + split_asks
        plans_end = [*(plan.start for plan in plans[1:]), len(asks)]
        results = await self._quotes(asks, failed)
        return [
            self._decide(plan, results[plan.start : end], failed)
            for plan, end in zip(plans, plans_end, strict=True)
        ]

    def _decide(
        self, plan: _Plan, second_round: Sequence[Quote | None], failed: set[str]
    ) -> RoutingDecision | NoRoute | QuotesUnavailable:
        src, dst = plan.src, plan.dst
        second_hops = second_round[: plan.seconds]
        split_quotes = second_round[plan.seconds :]
        candidates = [Route(DIRECT, (q,), q.amount_out) for q in plan.direct]
        for i in range(0, len(split_quotes), 2):
            a_quote, b_quote = split_quotes[i], split_quotes[i + 1]
            if a_quote is not None and b_quote is not None:
                total = a_quote.amount_out + b_quote.amount_out
                candidates.append(Route(SPLIT, (a_quote, b_quote), total))
        for hub, first in plan.best_first.items():
            seconds = [q for q in second_hops if q is not None and q.input_token == hub]
            if seconds:
                second = choose_best(seconds)
                candidates.append(Route(TWO_HOP, (first, second), second.amount_out))
        if not candidates:
            if failed:
                return QuotesUnavailable(
                    f"no venue could quote {src.symbol} -> {dst.symbol}: "
                    f"{', '.join(sorted(failed))} failed or timed out"
                )
            return NoRoute(f"no venue quotes {src.symbol} -> {dst.symbol} for {plan.amount}")
        chosen = choose_route(candidates)
        # Describing every candidate costs more than routing a small order: only when logged.
        if log.isEnabledFor(logging.INFO):
            log.info(
                "routed %s %s -> %s: chose %s; compared %s; venues left out: %s",
                plan.amount,
                src.symbol,
                dst.symbol,
                chosen.describe(),
                "; ".join(c.describe() for c in candidates),
                ", ".join(sorted(failed)) or "none",
            )
        return RoutingDecision(
            quotes=tuple(plan.direct), candidates=tuple(candidates), route=chosen
        )


class RouteBatcher:
    """`Router.route` for many orders at once: the swaps asked for in one turn of the
    event loop are routed together, one `route_many` for all their pairs, so that each
    venue is asked once a round for all of them. One per event loop: batch.py keeps the
    loop it first ran on."""

    def __init__(self, router: Router) -> None:
        self._router = router
        # No limit on batches in flight: a batch holds no connection, and the venues'
        # timeout bounds how long it takes.
        self._batcher: Batcher[tuple[Token, Token, Decimal], RoutingDecision] = Batcher(
            self._route_many, max_in_flight=sys.maxsize
        )
        self._took: collections.deque[float] = collections.deque(maxlen=32)

    @property
    def least_s(self) -> float:
        """The shortest of the last 32 batches: how long a routing asked now takes at
        least, as far as this process has seen (0 before the first)."""
        return min(self._took, default=0.0)

    async def _route_many(
        self, swaps: Sequence[tuple[Token, Token, Decimal]]
    ) -> list[RoutingDecision | NoRoute | QuotesUnavailable]:
        started = time.monotonic()
        try:
            return await self._router.route_many(swaps)
        finally:
            self._took.append(time.monotonic() - started)

    async def route(self, src: Token, dst: Token, amount: Decimal) -> RoutingDecision:
        """As `Router.route`."""
        return await self._batcher((src, dst, amount))

    def submit(self, src: Token, dst: Token, amount: Decimal) -> asyncio.Future[RoutingDecision]:
        """As `route`, but asked now: the swap joins this turn's batch before the caller
        awaits anything."""
        return self._batcher.submit((src, dst, amount))
