"""The simulated chain's pure parts: applying a transaction, the price walk, launches,
signatures and slot summaries. No database: what one slot does to a Market."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from order_engine.chain.ledger import listed, state_of
from order_engine.chain.market import ListedPool, Market, genesis_pools, listed_pools, new_pool
from order_engine.chain.model import (
    SlotSummary,
    Transaction,
    TxFailure,
    TxOutcome,
    TxStatus,
    build_transaction,
    decode_summary,
    encode_summary,
)
from order_engine.chain.slots import (
    SlotConfig,
    apply_transaction,
    head_start,
    scheduled_launch,
    walk_market,
)
from order_engine.chain.venues import ChainVenue
from order_engine.domain.errors import PoolExists
from order_engine.domain.routes import SwapLeg
from order_engine.routing.tokens import TOKENS
from order_engine.routing.venues import NoPool

ORDER = uuid.UUID("3f0c0b52-6f1e-4d59-a0b4-1b5c2d0f7e11")


def genesis() -> Market:
    return Market(listed_pools(genesis_pools()))


def tx(
    legs: tuple[SwapLeg, ...],
    *,
    minimum: str = "0",
    attempt: int = 1,
    output: str = "USDC",
    slot: int = 1,
) -> Transaction:
    return build_transaction(
        ORDER, attempt, "raydium", "SOL", output, Decimal(1), legs, Decimal(minimum), slot
    )


SOL_USDC = (SwapLeg("raydium", "SOL", "USDC", Decimal(1)),)


def test_a_landed_transaction_pays_what_the_pool_quoted_and_moves_its_reserves() -> None:
    market = genesis()
    pool = market.pool("raydium", "SOL", "USDC")
    quoted = pool.quote("SOL", Decimal(1)).amount_out
    outcome, moved = apply_transaction(
        market, tx(SOL_USDC), seed=1, failure_rate=0.0, already_landed=False
    )
    assert (outcome.status, outcome.amount_out) == (TxStatus.LANDED, quoted)
    assert outcome.executed_price == quoted
    assert pool.reserve_a == Decimal(200_001)
    assert moved == {market.listed()[0].id}


def test_output_below_the_minimum_fails_for_slippage_and_moves_nothing() -> None:
    market = genesis()
    pool = market.pool("raydium", "SOL", "USDC")
    outcome, moved = apply_transaction(
        market, tx(SOL_USDC, minimum="150"), seed=1, failure_rate=0.0, already_landed=False
    )
    assert (outcome.status, outcome.failure) == (TxStatus.FAILED, TxFailure.SLIPPAGE)
    assert (pool.reserve_a, moved) == (Decimal(200_000), set())


def test_second_hop_spends_what_the_first_paid() -> None:
    market = genesis()
    legs = (
        SwapLeg("raydium", "SOL", "USDC", Decimal(1)),
        SwapLeg("meteora", "USDC", "USDT", None),
    )
    first = market.pool("raydium", "SOL", "USDC").quote("SOL", Decimal(1)).amount_out
    second = market.pool("meteora", "USDC", "USDT").quote("USDC", first).amount_out
    outcome, moved = apply_transaction(
        market, tx(legs, output="USDT"), seed=1, failure_rate=0.0, already_landed=False
    )
    assert outcome.amount_out == second
    assert len(moved) == 2


def test_a_leg_on_a_pool_the_chain_lacks_is_refused_and_nothing_moves() -> None:
    market = genesis()
    legs = (
        SwapLeg("raydium", "SOL", "USDC", Decimal(1)),
        SwapLeg("raydium", "USDC", "JTO", None),
    )
    outcome, moved = apply_transaction(
        market, tx(legs, output="JTO"), seed=1, failure_rate=0.0, already_landed=False
    )
    assert (outcome.status, outcome.failure) == (TxStatus.FAILED, TxFailure.REFUSED)
    assert market.pool("raydium", "SOL", "USDC").reserve_a == Decimal(200_000)
    assert moved == set()


def test_an_order_never_lands_twice() -> None:
    outcome, _ = apply_transaction(
        genesis(), tx(SOL_USDC), seed=1, failure_rate=0.0, already_landed=True
    )
    assert (outcome.status, outcome.failure) == (TxStatus.FAILED, TxFailure.REFUSED)


def _refusals(seed: int) -> list[bool]:
    market = genesis()
    return [
        apply_transaction(
            market, tx(SOL_USDC, attempt=i), seed=seed, failure_rate=0.5, already_landed=False
        )[0].status
        is TxStatus.FAILED
        for i in range(1, 41)
    ]


def test_a_seed_makes_the_dexs_refusals_repeatable_whoever_produces_the_slot() -> None:
    first = _refusals(7)
    assert first == _refusals(7)
    assert any(first)
    assert not all(first)
    assert first != _refusals(8)


def test_the_signature_names_exactly_one_build() -> None:
    one = tx(SOL_USDC)
    assert tx(SOL_USDC).signature == one.signature
    assert tx(SOL_USDC, attempt=2).signature != one.signature
    assert tx(SOL_USDC, slot=2).signature != one.signature
    assert tx(SOL_USDC, minimum="1").signature != one.signature
    assert len(one.signature) in (87, 88)  # base58 of 64 bytes, as Solana's


def _reserves_after_walk(seed: int, steps: int) -> list[tuple[Decimal, Decimal]]:
    market = genesis()
    for slot in range(1, steps + 1):
        walk_market(market, seed=seed, slot=slot, volatility=0.005)
    return [(i.pool.reserve_a, i.pool.reserve_b) for i in market.listed()]


def test_price_walk_is_repeatable_for_a_seed_and_moves_every_pool() -> None:
    start = [(i.pool.reserve_a, i.pool.reserve_b) for i in genesis().listed()]
    walked = _reserves_after_walk(11, 10)
    assert walked == _reserves_after_walk(11, 10)
    assert walked != _reserves_after_walk(12, 10)
    assert all(w != s for w, s in zip(walked, start, strict=True))


def test_price_walk_keeps_k_and_stays_near_the_starting_price() -> None:
    market = genesis()
    start = {
        i.id: (i.pool.price_a_in_b, i.pool.reserve_a * i.pool.reserve_b) for i in market.listed()
    }
    for slot in range(1, 2001):
        walk_market(market, seed=5, slot=slot, volatility=0.005)
    for item in market.listed():
        price, k = start[item.id]
        # Pulled back toward the start each step, so 2000 steps of 0.5% do not wander off.
        assert Decimal("0.8") < item.pool.price_a_in_b / price < Decimal("1.25")
        # Only the rounding of the reserves to whole units changes k.
        assert abs(item.pool.reserve_a * item.pool.reserve_b / k - 1) < Decimal("1e-6")


def test_launches_are_seeded_and_only_for_tokens_without_a_pool() -> None:
    def launches(seed: int) -> list[tuple[str, str]]:
        market = genesis()
        done = []
        slot = 0
        while (pool := scheduled_launch(market, seed=seed, slot=slot)) is not None:
            market.add(ListedPool(len(market.listed()) + 1, pool, pool.price_a_in_b))
            done.append((pool.dex, pool.token_a.symbol))
            slot += 1
        return done

    first = launches(1)
    assert sorted(symbol for _, symbol in first) == ["MEW", "POPCAT"]
    assert first == launches(1)


def test_a_second_pool_for_a_pair_on_one_dex_is_refused() -> None:
    market = genesis()
    with pytest.raises(PoolExists):
        market.add(ListedPool(99, new_pool("raydium", "USDC", "SOL", "1000", "10"), Decimal(1)))
    with pytest.raises(NoPool):
        market.pool("raydium", "MEW", "SOL")


def test_a_summary_travels_as_json_without_losing_a_digit() -> None:
    pool = genesis().listed()[0]
    pool.pool.reserve_a = Decimal("200000.000000001")
    summary = SlotSummary(
        slot=42,
        pools=(state_of(pool),),
        launched=(),
        outcomes=(
            TxOutcome("sig", TxStatus.LANDED, 42, Decimal("149.81"), Decimal("149.81")),
            TxOutcome("other", TxStatus.FAILED, 42, failure=TxFailure.SLIPPAGE, reason="x"),
        ),
    )
    decoded = decode_summary(encode_summary(summary))
    assert decoded == summary
    assert listed(decoded.pools[0]).pool.reserve_a == Decimal("200000.000000001")


async def test_a_chain_venue_answers_from_the_view_at_the_end_of_its_latency() -> None:
    """A quote is read from the view when the simulated latency is over (the view may
    have moved meanwhile); a request given up on (its round timed out) never reads it."""
    view = genesis()
    reads: list[Market] = []

    def current() -> Market:
        reads.append(view)
        return view

    venue = ChainVenue("raydium", current, quote_delay_s=0.01)
    ask = (TOKENS["SOL"], TOKENS["USDC"], Decimal(1))
    answer = venue.quotes([ask])
    assert not answer.done()
    assert reads == []
    [quote] = await answer
    assert quote is not None
    assert quote.dex == "raydium"
    assert len(reads) == 1

    given_up = venue.quotes([ask])
    given_up.cancel()
    # Timers fire in the order they are due: by the time the later request is answered,
    # the one given up on would have read the view too, had it not been dropped.
    await venue.quotes([ask])
    assert len(reads) == 2


@pytest.mark.parametrize(
    ("work", "expected"),
    [
        ((), 0.0),
        ((0.010, 0.040, 0.020), 0.060),
        ((0.150,), 0.200),
        ((0.050, 0.210), 0.0),
    ],
)
def test_a_slot_starts_ahead_by_its_recent_work_but_not_when_slots_fall_behind(
    work: tuple[float, ...], expected: float
) -> None:
    """Half as long again as the longest recent slot, capped at half a slot; none once a
    slot took more than half a slot, so an overloaded producer runs as it did before."""
    config = SlotConfig(slot_s=0.4, execution_delay_s=2.5)
    assert head_start(work, config) == pytest.approx(expected)


def test_a_slot_never_starts_ahead_by_more_than_the_execution_delay() -> None:
    """Whatever is due by the slot's time must already have been sent."""
    assert head_start((0.1,), SlotConfig(slot_s=0.4, execution_delay_s=0.05)) == 0.05
    assert head_start((0.1,), SlotConfig(slot_s=0.4, execution_delay_s=0.0)) == 0.0
