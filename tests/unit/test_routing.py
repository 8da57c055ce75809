"""The routing logic with no I/O: pool math, the slippage floor, picking a quote, the router."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import attrs
import pytest

from order_engine.chain.market import (
    Market,
    genesis_pools,
    listed_pools,
    meteora_pools,
    raydium_pools,
)
from order_engine.chain.venues import chain_venues
from order_engine.domain.routes import Quote
from order_engine.routing.pools import ConstantProductPool, DynamicFeePool, Pool
from order_engine.routing.router import (
    NoRoute,
    QuotesUnavailable,
    RouteBatcher,
    Router,
    RoutingDecision,
    choose_best,
    min_amount_out,
)
from order_engine.routing.tokens import TOKENS, Token
from order_engine.routing.venues import Ask, NoPool, VenueUnavailable
from tests.support import CountingVenue

SOL = TOKENS["SOL"]
USDC = TOKENS["USDC"]
USDT = TOKENS["USDT"]
JUP = TOKENS["JUP"]
BONK = TOKENS["BONK"]

# Sizes from dust to far past anything a wallet holds, so that both the nearly linear
# region and the region where the curve flattens against the reserve are exercised.
SIZES = [Decimal(s) for s in ("0.001", "0.5", "1", "37.25", "1000", "123456.789", "10000000")]


def _all_pools() -> list[Pool]:
    return raydium_pools() + meteora_pools()


def _sides() -> list[tuple[str, str]]:
    """(pool label, input symbol) for both directions of every simulated pool."""
    return [
        (f"{p.dex}:{p.token_a.symbol}/{p.token_b.symbol}", symbol)
        for p in _all_pools()
        for symbol in (p.token_a.symbol, p.token_b.symbol)
    ]


SIDES = _sides()
SIDE_IDS = [f"{label}:from-{symbol}" for label, symbol in SIDES]
RAYDIUM_SIDES = [(label, symbol) for label, symbol in SIDES if label.startswith("raydium:")]
RAYDIUM_SIDE_IDS = [f"{label}:from-{symbol}" for label, symbol in RAYDIUM_SIDES]


def _fresh_pool(label: str) -> Pool:
    # Pools are mutable (apply moves reserves), so each use builds a new one.
    for p in _all_pools():
        if f"{p.dex}:{p.token_a.symbol}/{p.token_b.symbol}" == label:
            return p
    raise LookupError(label)


def _reserves(pool: Pool, input_symbol: str) -> tuple[Token, Decimal, Decimal]:
    if input_symbol == pool.token_a.symbol:
        return pool.token_b, pool.reserve_a, pool.reserve_b
    return pool.token_a, pool.reserve_b, pool.reserve_a


def _exact_out(pool: Pool, input_symbol: str, amount_in: Decimal, fee_bps: int) -> Fraction:
    """The constant-product output in exact rational arithmetic, before any rounding."""
    _, reserve_in, reserve_out = _reserves(pool, input_symbol)
    after_fee = Fraction(amount_in) * (10_000 - fee_bps) / 10_000
    return Fraction(reserve_out) * after_fee / (Fraction(reserve_in) + after_fee)


def _floor_to(token: Token, value: Fraction) -> Decimal:
    return Decimal(math.floor(value * 10**token.decimals)).scaleb(-token.decimals)


def _in_units(token: Token, amount: Decimal) -> Decimal:
    """`amount` expressed in whole base units of `token`, as an input must be."""
    return token.round_down(amount)


# --- ConstantProductPool -------------------------------------------------------------------


def _fee_free(pool: Pool) -> Pool:
    if isinstance(pool, ConstantProductPool):
        return attrs.evolve(pool, fee_bps=0)
    assert isinstance(pool, DynamicFeePool)
    return attrs.evolve(pool, base_fee_bps=0, variable_factor=Decimal(0))


@pytest.mark.parametrize(("label", "symbol"), SIDES, ids=SIDE_IDS)
def test_pool_charges_its_fee(label: str, symbol: str) -> None:
    pool = _fresh_pool(label)
    fee_free = _fee_free(pool)
    token_in = TOKENS[symbol]
    for size in SIZES:
        amount = _in_units(token_in, size)
        with_fee = pool.quote(symbol, amount).amount_out
        without_fee = fee_free.quote(symbol, amount).amount_out
        # Dust can round to zero either way; only a visible output can show the fee.
        if without_fee >= 1000 * _reserves(pool, symbol)[0].unit:
            assert with_fee < without_fee, (size, with_fee, without_fee)
            assert Fraction(with_fee) < _exact_out(fee_free, symbol, amount, 0), size


def test_fee_is_the_pools_own_rate() -> None:
    # A 1 SOL trade on a 30M/200k pool is nearly linear, so the fee shows up almost whole.
    pool = raydium_pools()[0]
    quote = pool.quote("SOL", Decimal(1))
    fee_free = _fee_free(pool).quote("SOL", Decimal(1))
    lost_bps = (fee_free.amount_out - quote.amount_out) / fee_free.amount_out * 10_000
    assert quote.fee_bps == 25
    assert Decimal("24.9") < lost_bps < Decimal("25.1")


@pytest.mark.parametrize(("label", "symbol"), SIDES, ids=SIDE_IDS)
def test_output_grows_with_input(label: str, symbol: str) -> None:
    pool = _fresh_pool(label)
    token_in = TOKENS[symbol]
    # Decades apart, every step must pay strictly more once the output is above dust.
    outputs = [pool.quote(symbol, Decimal(10) ** e).amount_out for e in range(0, 10)]
    for e, (smaller, larger) in enumerate(itertools.pairwise(outputs)):
        assert larger > smaller, (e, smaller, larger)
    # One base unit at a time, rounding may repeat a value but must never go back.
    start = Decimal(3)
    fine = [pool.quote(symbol, start + i * token_in.unit).amount_out for i in range(200)]
    assert all(b >= a for a, b in itertools.pairwise(fine))


@pytest.mark.parametrize(("label", "symbol"), SIDES, ids=SIDE_IDS)
def test_output_never_reaches_the_reserve(label: str, symbol: str) -> None:
    pool = _fresh_pool(label)
    _, _, reserve_out = _reserves(pool, symbol)
    # Up to 10**45, far past any token's supply: with too little precision the division
    # rounded up to the whole reserve around 10**33.
    for e in range(0, 46, 3):
        out = pool.quote(symbol, Decimal(10) ** e).amount_out
        assert 0 <= out < reserve_out, (e, out, reserve_out)


@pytest.mark.parametrize(("label", "symbol"), RAYDIUM_SIDES, ids=RAYDIUM_SIDE_IDS)
def test_output_is_exact_math_rounded_down_to_the_output_decimals(label: str, symbol: str) -> None:
    pool = _fresh_pool(label)
    assert isinstance(pool, ConstantProductPool)
    token_in = TOKENS[symbol]
    token_out = _reserves(pool, symbol)[0]
    rng = random.Random(f"rounding:{label}:{symbol}")
    amounts = [_in_units(token_in, s) for s in SIZES] + [
        Decimal(rng.randrange(1, 10 ** rng.randrange(2, 20))).scaleb(-token_in.decimals)
        for _ in range(300)
    ]
    for amount in amounts:
        out = pool.quote(symbol, amount).amount_out
        exact = _exact_out(pool, symbol, amount, pool.fee_bps)
        # Never more than the curve gives (the pool would lose), and not a unit less either.
        assert Fraction(out) <= exact, (amount, out)
        assert out == _floor_to(token_out, exact), (amount, out)
        assert out == token_out.round_down(out)


def test_rounding_drops_digits_that_round_half_up_would_keep() -> None:
    # 3 USDC into a 1:1 pool with no fee pays 3 * 1000/1003 = 2.99102691924...;
    # a 6-decimal floor is 2.991026, whereas rounding to nearest would say 2.991027.
    pool = ConstantProductPool("t", USDC, USDT, Decimal(1000), Decimal(1000), 0)
    assert pool.quote("USDC", Decimal(3)).amount_out == Decimal("2.991026")


@pytest.mark.parametrize(("label", "symbol"), SIDES, ids=SIDE_IDS)
def test_apply_moves_reserves_and_never_shrinks_k(label: str, symbol: str) -> None:
    for size in SIZES:
        pool = _fresh_pool(label)
        amount = _in_units(TOKENS[symbol], size)
        _, reserve_in, reserve_out = _reserves(pool, symbol)
        k_before = pool.reserve_a * pool.reserve_b
        out = pool.quote(symbol, amount).amount_out

        pool.apply(symbol, amount, out)

        _, new_in, new_out = _reserves(pool, symbol)
        assert new_in == reserve_in + amount
        assert new_out == reserve_out - out
        # The fee and the rounding both stay in the pool, so k can only grow.
        assert pool.reserve_a * pool.reserve_b >= k_before, size


def test_apply_grows_k_strictly_because_the_fee_stays() -> None:
    pool = raydium_pools()[0]
    k_before = pool.reserve_a * pool.reserve_b
    pool.apply("SOL", Decimal(10), pool.quote("SOL", Decimal(10)).amount_out)
    assert pool.reserve_a * pool.reserve_b > k_before


@pytest.mark.parametrize(("label", "symbol"), SIDES, ids=SIDE_IDS)
def test_round_trip_never_pays_back_more_than_was_put_in(label: str, symbol: str) -> None:
    for size in SIZES:
        pool = _fresh_pool(label)
        amount = _in_units(TOKENS[symbol], size)
        there = pool.quote(symbol, amount)
        pool.apply(symbol, amount, there.amount_out)
        if there.amount_out == 0:
            continue
        back = pool.quote(there.output_token, there.amount_out)
        assert back.output_token == symbol
        # Two fees were paid; getting back as much would mean the pool can be milked.
        assert back.amount_out < amount, (size, amount, back.amount_out)


def test_quote_rejects_a_token_the_pool_does_not_hold() -> None:
    with pytest.raises(ValueError, match="JUP"):
        raydium_pools()[0].quote("JUP", Decimal(1))


# --- min_amount_out ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quoted", "bps", "token", "expected"),
    [
        (Decimal("100"), 50, USDC, Decimal("99.5")),
        (Decimal("200"), 100, USDC, Decimal("198")),
        (Decimal("1.5"), 30, SOL, Decimal("1.4955")),
        (Decimal("149.969708"), 0, USDC, Decimal("149.969708")),
        (Decimal("149.969708"), 10_000, USDC, Decimal("0")),
        # 1.000001 * 0.9999 = 0.9999009999: rounding to nearest would give 0.999901.
        (Decimal("1.000001"), 1, USDC, Decimal("0.999900")),
        # 7 base units of BONK less 1 bp is 6.9993 units: the floor gives up a whole unit.
        (Decimal("0.00007"), 1, BONK, Decimal("0.00006")),
    ],
)
def test_min_amount_out(quoted: Decimal, bps: int, token: Token, expected: Decimal) -> None:
    assert min_amount_out(quoted, bps, token) == expected


def test_min_amount_out_is_the_exact_floor_of_the_tolerance() -> None:
    rng = random.Random("min_amount_out")
    for _ in range(500):
        token = rng.choice(list(TOKENS.values()))
        quoted = Decimal(rng.randrange(1, 10**15)).scaleb(-token.decimals)
        bps = rng.randrange(0, 5001)
        floor = min_amount_out(quoted, bps, token)
        exact = Fraction(quoted) * (10_000 - bps) / 10_000
        assert floor == _floor_to(token, exact), (quoted, bps, token.symbol)
        assert floor <= quoted


# --- choose_best ---------------------------------------------------------------------------


def _quote(dex: str, amount_out: str, fee_bps: int = 25) -> Quote:
    return Quote(
        dex=dex,
        input_token="SOL",
        output_token="USDC",
        input_amount=Decimal(1),
        amount_out=Decimal(amount_out),
        fee_bps=fee_bps,
        price_impact_bps=Decimal(0),
    )


def test_choose_best_picks_the_highest_output_wherever_it_is() -> None:
    a, b, c = _quote("a", "149.1"), _quote("b", "149.9"), _quote("c", "149.5")
    for order in itertools.permutations([a, b, c]):
        assert choose_best(order) is b


def test_choose_best_ranks_on_output_not_on_fee() -> None:
    # amount_out is already net of the fee; a lower fee must not win on its own.
    cheap, deep = _quote("cheap", "149.0", fee_bps=5), _quote("deep", "149.2", fee_bps=30)
    assert choose_best([cheap, deep]) is deep


def test_choose_best_breaks_a_tie_in_favour_of_the_first_venue() -> None:
    first, second = _quote("raydium", "150"), _quote("meteora", "150")
    assert choose_best([first, second]) is first
    assert choose_best([second, first]) is second


def test_choose_best_with_nothing_to_choose_from() -> None:
    with pytest.raises(NoRoute):
        choose_best([])


# --- Router with fake venues ---------------------------------------------------------------


class _FakeVenue:
    """A Venue with a SOL/USDC pool whose quote pays a fixed amount; subclasses change how
    quote() behaves. `asked` counts the quotes asked for that pair."""

    async def quotes(self, asks: Sequence[Ask]) -> list[Quote | None]:
        answers: list[Quote | None] = []
        for input_token, output_token, amount in asks:
            try:
                answers.append(await self.quote(input_token, output_token, amount))
            except NoPool:
                answers.append(None)
        return answers

    def __init__(self, name: str, amount_out: str = "150") -> None:
        self._name = name
        self._amount_out = amount_out
        self.asked = 0

    @property
    def name(self) -> str:
        return self._name

    def _ask(self, input_token: Token, output_token: Token) -> None:
        if (input_token, output_token) != (SOL, USDC):
            raise NoPool(f"{self.name} only trades SOL -> USDC")
        self.asked += 1

    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        self._ask(input_token, output_token)
        return Quote(
            dex=self._name,
            input_token=input_token.symbol,
            output_token=output_token.symbol,
            input_amount=amount,
            amount_out=Decimal(self._amount_out),
            fee_bps=25,
            price_impact_bps=Decimal(0),
        )


class _NoPoolVenue(_FakeVenue):
    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        self._ask(input_token, output_token)
        raise NoPool(f"{self.name} has no pool")


class _BrokenVenue(_FakeVenue):
    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        self._ask(input_token, output_token)
        raise VenueUnavailable(f"{self.name} is down")


class _HangingVenue(_FakeVenue):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.never = asyncio.Event()
        self.cancelled = False

    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        self._ask(input_token, output_token)
        try:
            await self.never.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("the event is never set")


class _BarrierVenue(_FakeVenue):
    def __init__(self, name: str, amount_out: str, barrier: asyncio.Barrier) -> None:
        super().__init__(name, amount_out)
        self._barrier = barrier

    async def quote(self, input_token: Token, output_token: Token, amount: Decimal) -> Quote:
        # Passes only when the other venue is inside quote() too, i.e. asked concurrently.
        await self._barrier.wait()
        return await super().quote(input_token, output_token, amount)


async def test_router_picks_the_venue_paying_most() -> None:
    router = Router([_FakeVenue("a", "149"), _FakeVenue("b", "151")], quote_timeout_s=1)
    decision = await router.route(SOL, USDC, Decimal(1))
    assert decision.route.dex == "b"
    assert sorted(q.dex for q in decision.quotes) == ["a", "b"]


async def test_router_skips_a_venue_without_the_pool() -> None:
    no_pool = _NoPoolVenue("nopool")
    router = Router([no_pool, _FakeVenue("ok", "100")], quote_timeout_s=1)
    decision = await router.route(SOL, USDC, Decimal(1))
    assert no_pool.asked == 1
    assert [q.dex for q in decision.quotes] == ["ok"]
    assert decision.route.dex == "ok"


async def test_router_skips_a_venue_that_times_out() -> None:
    hanging = _HangingVenue("slow")
    router = Router([hanging, _FakeVenue("ok", "100")], quote_timeout_s=0.01)
    async with asyncio.timeout(1):
        decision = await router.route(SOL, USDC, Decimal(1))
    assert hanging.asked == 1
    # The abandoned quote must be cancelled, not left running in the background.
    assert hanging.cancelled
    assert [q.dex for q in decision.quotes] == ["ok"]


async def test_router_skips_a_venue_that_fails() -> None:
    broken = _BrokenVenue("broken")
    router = Router([broken, _FakeVenue("ok", "100")], quote_timeout_s=1)
    decision = await router.route(SOL, USDC, Decimal(1))
    assert broken.asked == 1
    assert [q.dex for q in decision.quotes] == ["ok"]


async def test_router_ignores_a_quote_that_pays_nothing() -> None:
    router = Router([_FakeVenue("dust", "0"), _FakeVenue("ok", "0.000001")], quote_timeout_s=1)
    decision = await router.route(SOL, USDC, Decimal("0.000000001"))
    assert [q.dex for q in decision.quotes] == ["ok"]


async def test_router_raises_quotes_unavailable_when_venues_fail_or_time_out() -> None:
    venues = [_NoPoolVenue("nopool"), _BrokenVenue("broken"), _HangingVenue("slow")]
    router = Router(venues, quote_timeout_s=0.01)
    async with asyncio.timeout(1):
        with pytest.raises(QuotesUnavailable, match="broken"):
            await router.route(SOL, USDC, Decimal(1))
    assert all(v.asked == 1 for v in venues)


async def test_router_raises_no_route_when_no_venue_has_a_pool() -> None:
    """Nothing transient: no venue has the pair, so there is nothing to try again."""
    venues = [_NoPoolVenue("a"), _NoPoolVenue("b")]
    with pytest.raises(NoRoute):
        await Router(venues, quote_timeout_s=1).route(SOL, USDC, Decimal(1))


async def test_router_raises_no_route_with_no_venues() -> None:
    with pytest.raises(NoRoute):
        await Router([], quote_timeout_s=1).route(SOL, USDC, Decimal(1))


async def test_router_asks_venues_concurrently() -> None:
    barrier = asyncio.Barrier(2)
    venues = [_BarrierVenue("a", "149", barrier), _BarrierVenue("b", "151", barrier)]
    # The quote timeout is longer than the outer one, so a router that asks one venue
    # at a time fails on the outer timeout instead of quietly skipping the first venue.
    router = Router(venues, quote_timeout_s=5)
    async with asyncio.timeout(1):
        decision = await router.route(SOL, USDC, Decimal(1))
    assert sorted(q.dex for q in decision.quotes) == ["a", "b"]
    assert decision.route.dex == "b"


# --- Router with the simulated pools -------------------------------------------------------


def _simulated_router(quote_delay_s: float = 0) -> Router:
    """The router over Raydium and Meteora quoting the genesis pools."""
    market = Market(listed_pools(genesis_pools()))
    return Router(chain_venues(lambda: market, quote_delay_s=quote_delay_s), quote_timeout_s=1)


async def test_small_trade_goes_to_meteora_for_its_lower_fee() -> None:
    # 1 SOL: raydium pays 149.624253 USDC, meteora 149.843510; impact is negligible in
    # both, so meteora's dynamic fee (0.10% plus a sliver for size) against 0.25% decides.
    decision = await _simulated_router().route(SOL, USDC, Decimal(1))
    assert {q.dex for q in decision.quotes} == {"raydium", "meteora"}
    assert decision.route.kind == "direct"
    assert decision.route.dex == "meteora"
    assert decision.route.amount_out == Decimal("149.843510")
    assert decision.route.legs[0].fee_bps == 10


async def test_larger_trade_goes_to_raydium_for_its_depth() -> None:
    # 100 SOL: meteora's fee has risen to about 0.20% and its shallower pool moves
    # further, so raydium pays more: 14955.041173 against 14940.308309 USDC.
    decision = await _simulated_router().route(SOL, USDC, Decimal(100))
    assert decision.route.kind == "direct"
    assert decision.route.dex == "raydium"
    assert decision.route.amount_out == Decimal("14955.041173")


async def test_large_trade_is_split_when_that_pays_more_than_either_venue() -> None:
    decision = await _simulated_router().route(SOL, USDC, Decimal(5000))
    route = decision.route
    assert route.kind == "split"
    assert route.dex == "split"
    assert {q.dex for q in route.legs} == {"raydium", "meteora"}
    assert sum(q.input_amount for q in route.legs) == Decimal(5000)
    assert route.amount_out == sum(q.amount_out for q in route.legs)
    assert route.amount_out > max(q.amount_out for q in decision.quotes)
    assert [(leg.dex, leg.input_amount) for leg in route.swap_legs()] == [
        (q.dex, q.input_amount) for q in route.legs
    ]


async def test_pair_on_one_venue_only_routes_there() -> None:
    # Only meteora has a JUP/USDC pool; raydium's NoPool must not sink the order.
    decision = await _simulated_router().route(USDC, JUP, Decimal(100))
    assert [q.dex for q in decision.quotes] == ["meteora"]
    assert decision.route.legs[-1].output_token == "JUP"


async def test_pair_without_a_pool_goes_through_a_hub() -> None:
    # No pool trades BONK/USDT; BONK/USDC (meteora) then USDC/USDT does.
    decision = await _simulated_router().route(BONK, USDT, Decimal(1_000_000))
    route = decision.route
    assert decision.quotes == ()
    assert route.kind == "two-hop"
    assert route.dex == "multi"
    first, second = route.legs
    assert (first.input_token, first.output_token) == ("BONK", second.input_token)
    assert second.output_token == "USDT"
    assert second.input_amount == first.amount_out
    assert route.amount_out == second.amount_out > 0
    legs = route.swap_legs()
    assert legs[0].input_amount == Decimal(1_000_000)
    # The second hop spends what the first pays at execution, not what it was quoted.
    assert legs[1].input_amount is None


async def test_two_hop_wins_when_it_pays_more_than_the_direct_pool() -> None:
    # JUP/SOL trades only on raydium, at 0.25%; SOL -> USDC -> JUP on meteora pays about
    # 0.10% twice, which is less.
    decision = await _simulated_router().route(SOL, JUP, Decimal(1))
    assert [q.dex for q in decision.quotes] == ["raydium"]
    assert decision.route.kind == "two-hop"
    assert decision.route.amount_out > decision.quotes[0].amount_out


async def test_pair_on_no_venue_has_no_route() -> None:
    # POPCAT has no pool until one is launched, so not even a path reaches it.
    with pytest.raises(NoRoute):
        await _simulated_router().route(TOKENS["POPCAT"], USDC, Decimal(1))


async def test_orders_routed_in_one_turn_share_each_venues_rounds() -> None:
    """Five SOL -> USDC orders and one USDC -> SOL order routed at once: each venue is
    called once for all of them, whatever their pair (the second round has nothing to
    ask here), not once for each order or pair; every order gets the decision for its
    own amount, and the pair no venue trades fails only its own order."""
    a, b = CountingVenue(_FakeVenue("a", "149")), CountingVenue(_FakeVenue("b", "151"))
    routes = RouteBatcher(Router([a, b], quote_timeout_s=1))
    *decisions, other = await asyncio.gather(
        *(routes.route(SOL, USDC, Decimal(i)) for i in range(1, 6)),
        routes.route(USDC, SOL, Decimal(1)),
        return_exceptions=True,
    )
    assert isinstance(other, NoRoute)
    assert [
        (d.route.dex, d.quotes[0].input_amount) for d in decisions if isinstance(d, RoutingDecision)
    ] == [("b", Decimal(i)) for i in range(1, 6)]
    assert (a.calls, b.calls) == (1, 1)


async def test_the_batcher_knows_a_routing_takes_at_least_its_two_quote_rounds() -> None:
    """What the order's lock and read may spend beside a routing is read off this: zero
    before any routing, then no more than the fastest one seen took."""
    routes = RouteBatcher(_simulated_router(quote_delay_s=0.02))
    assert routes.least_s == 0
    await routes.route(SOL, USDC, Decimal(1))
    await routes.route(SOL, USDC, Decimal(2))
    # Two rounds of 20 ms each, less the clock's resolution.
    assert 0.04 - 0.002 <= routes.least_s < 1
