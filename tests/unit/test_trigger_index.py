"""The trigger index and the pair prices it is compared with: which resting orders a slot
looks at, in which order, and which it leaves alone. Pure: no database, no clock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, reject, settings
from hypothesis import strategies as st

from order_engine.chain.market import Market, genesis_pools, listed_pools
from order_engine.chain.prices import best_price
from order_engine.chain.slots import walk_market
from order_engine.chain.venues import chain_venues
from order_engine.domain.orders import OrderType, RestingOrder
from order_engine.domain.routes import price_of
from order_engine.engine.book import TriggerIndex
from order_engine.routing.router import NoRoute, Router, limit_amount_out
from order_engine.routing.tokens import TOKENS

SELL_SOL = ("SOL", "USDC")
BUY_SOL = ("USDC", "SOL")
NOON = datetime(2026, 12, 1, 12, tzinfo=UTC)


def limit(
    price: str,
    pair: tuple[str, str] = SELL_SOL,
    *,
    expires_at: datetime | None = None,
    amount: str = "1",
) -> RestingOrder:
    return RestingOrder(
        id=uuid.uuid4(),
        type=OrderType.LIMIT,
        input_token=pair[0],
        output_token=pair[1],
        input_amount=Decimal(amount),
        limit_price=Decimal(price),
        expires_at=expires_at,
        rest_slot=1,
    )


def sniper(token: str, *, rest_slot: int, price: str | None = None) -> RestingOrder:
    return RestingOrder(
        id=uuid.uuid4(),
        type=OrderType.SNIPER,
        input_token="SOL",
        output_token=token,
        input_amount=Decimal(1),
        limit_price=None if price is None else Decimal(price),
        expires_at=None,
        rest_slot=rest_slot,
    )


def indexed(*orders: RestingOrder) -> TriggerIndex:
    index = TriggerIndex()
    for order in orders:
        assert index.add(order)
    return index


def test_a_rising_price_takes_the_limits_it_reaches_lowest_first() -> None:
    orders = [limit(p) for p in ("152", "149", "151", "150")]
    index = indexed(*orders)
    assert index.crossed(SELL_SOL, 148.99) == []
    assert [o.limit_price for o in index.crossed(SELL_SOL, 150.5)] == [149, 150]
    # What was taken out is checked, not lost: still resting, out of the list.
    assert len(index) == 4
    assert index.crossed(SELL_SOL, 150.5) == []
    assert [o.limit_price for o in index.crossed(SELL_SOL, 1e9)] == [151, 152]


def test_a_price_equal_to_a_limit_reaches_it() -> None:
    index = indexed(limit("150.25"))
    assert index.crossed(SELL_SOL, float(Decimal("150.24"))) == []
    assert len(index.crossed(SELL_SOL, float(Decimal("150.25")))) == 1


def test_many_orders_at_one_price_cross_together_in_the_order_they_came() -> None:
    orders = [limit("150") for _ in range(1000)]
    index = indexed(*orders, limit("150.01"))
    assert index.crossed(SELL_SOL, 149.999) == []
    assert index.crossed(SELL_SOL, 150.0) == orders
    assert len(index.crossed(SELL_SOL, 150.01)) == 1


def test_each_side_of_a_pair_crosses_when_the_market_moves_its_way() -> None:
    """SOL → USDC at 151 fires as SOL rises past 151 USDC; USDC → SOL at 1/149 fires as
    SOL falls under 149; a move either way reaches one side, never the other."""
    market = Market(listed_pools(genesis_pools()))
    sell, buy = limit("151", SELL_SOL), limit(str(Decimal(1) / 149), BUY_SOL)
    index = indexed(sell, buy)

    def crossings() -> list[RestingOrder]:
        found = []
        for pair in index.pairs():
            price = best_price(market, *pair)
            assert price is not None
            found += index.crossed(pair, float(price))
        return found

    assert crossings() == []
    for dex in ("raydium", "meteora"):
        market.pool(dex, "SOL", "USDC").shift_price(Decimal("1.02"))
    assert crossings() == [sell]
    index.put_back(sell)
    for dex in ("raydium", "meteora"):
        market.pool(dex, "SOL", "USDC").shift_price(Decimal("0.96"))
    assert crossings() == [buy]


def test_an_order_its_own_size_held_back_waits_for_the_price_to_make_up_for_it() -> None:
    """The best price reached its limit, but its route paid 1 % less: it is looked at
    again only once the best price is 1 % higher, or after a launch."""
    order = limit("150")
    index = indexed(order)
    assert index.crossed(SELL_SOL, 150.0) == [order]
    index.raise_key(order, best=150.0, achieved=148.5)
    assert index.crossed(SELL_SOL, 151.0) == []
    assert index.crossed(SELL_SOL, 151.6) == [order]
    index.raise_key(order, best=151.6, achieved=149.0)
    assert index.launched("POPCAT", 9) == []
    assert index.crossed(SELL_SOL, 150.0) == [order]


def test_a_discarded_order_never_comes_back() -> None:
    kept, cancelled = limit("150"), limit("150", expires_at=NOON)
    index = indexed(kept, cancelled)
    assert index.discard(cancelled.id) == cancelled
    assert index.discard(cancelled.id) is None
    assert index.crossed(SELL_SOL, 200.0) == [kept]
    assert index.expired((NOON + timedelta(days=1)).timestamp()) == []
    assert cancelled.id not in index
    assert not index.add(kept)


def test_snipers_fire_on_a_launch_of_their_token_after_they_began_resting() -> None:
    early, late = sniper("POPCAT", rest_slot=3), sniper("POPCAT", rest_slot=7)
    other = sniper("MEW", rest_slot=3)
    index = indexed(early, late, other)
    assert index.launched("POPCAT", 7) == [early]
    assert index.launched("POPCAT", 8) == [late]
    assert index.launched("POPCAT", 9) == []
    # One that reaches the index after its launch (loaded a slot late) is due at once.
    index.add(missed := sniper("POPCAT", rest_slot=8))
    assert index.due() == [missed]
    assert index.due() == []
    index.wait_for_launch(missed)
    assert index.launched("POPCAT", 10) == [missed]


def test_a_sniper_with_a_limit_waits_for_its_price_once_its_pool_trades() -> None:
    order = sniper("POPCAT", rest_slot=1, price="50000")
    index = indexed(order)
    assert index.pairs() == []
    assert index.launched("POPCAT", 2) == [order]
    index.put_back(order)
    assert index.crossed(("SOL", "POPCAT"), 49_000.0) == []
    assert index.crossed(("SOL", "POPCAT"), 51_000.0) == [order]


def test_orders_expire_in_deadline_order_and_leave_the_index() -> None:
    late = limit("150", expires_at=NOON + timedelta(seconds=2))
    soon = limit("150", expires_at=NOON + timedelta(seconds=1))
    never = limit("150")
    index = indexed(late, soon, never)
    assert index.expired(NOON.timestamp()) == []
    assert index.expired((NOON + timedelta(seconds=5)).timestamp()) == [soon, late]
    assert len(index) == 1
    assert index.crossed(SELL_SOL, 200.0) == [never]


def test_the_deadlines_of_cancelled_orders_do_not_pile_up() -> None:
    index = TriggerIndex()
    for _ in range(20_000):
        order = limit("150", expires_at=NOON)
        index.add(order)
        index.discard(order.id)
    assert len(index) == 0
    assert len(index._deadlines) < 2_000


def test_a_limit_is_rounded_up_to_the_output_tokens_base_units() -> None:
    usdc = TOKENS["USDC"]
    assert limit_amount_out(Decimal("1.5"), Decimal("150.1234567"), usdc) == Decimal("225.185186")
    assert limit_amount_out(Decimal("10"), Decimal("2.5"), usdc) == Decimal("25.000000")
    # Past the 28 digits of the default context, the product would round down first.
    exact = limit_amount_out(Decimal("0.000000001"), Decimal("150000000.000000000000000001"), usdc)
    assert exact == Decimal("0.150001")


TRADED = sorted(TOKENS)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 10**6),
    st.integers(0, 5),
    st.sampled_from(TRADED),
    st.sampled_from(TRADED),
    st.integers(1, 10**8),
)
def test_no_route_of_any_size_beats_the_pairs_best_price(
    seed: int, steps: int, src: str, dst: str, hundredths: int
) -> None:
    """What lets a slot skip every limit above the best price: the router's route, for
    any amount on any walked market, never pays more a unit."""
    if src == dst:
        reject()
    market = Market(listed_pools(genesis_pools()))
    for slot in range(1, steps + 1):
        walk_market(market, seed=seed, slot=slot, volatility=0.02)
    amount = TOKENS[src].round_down(Decimal(hundredths) / 100)
    if amount <= 0:
        reject()
    router = Router(chain_venues(lambda: market, quote_delay_s=0), quote_timeout_s=5)
    try:
        decision = asyncio.run(router.route(TOKENS[src], TOKENS[dst], amount))
    except NoRoute:
        reject()
    best = best_price(market, src, dst)
    assert best is not None
    assert price_of(amount, decision.route.amount_out) <= best
