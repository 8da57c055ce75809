"""The state machine: the one place that says which status may follow which; and what
an order asks the router."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import attrs
import pytest

from order_engine.domain.orders import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    OrderStatus,
    OrderType,
    can_transition,
    sources_of,
)
from order_engine.domain.routes import RouteAsk
from tests.support import new_order

S = OrderStatus
MARKET_PATH = [S.PENDING, S.ROUTING, S.BUILDING, S.SUBMITTED, S.CONFIRMED]
NON_TERMINAL = [s for s in OrderStatus if s not in TERMINAL_STATUSES]


def test_market_path_steps_forward_one_at_a_time() -> None:
    for current, new in itertools.pairwise(MARKET_PATH):
        assert can_transition(current, new), (current, new)


def test_no_step_may_be_skipped_on_the_market_path() -> None:
    for i, current in enumerate(MARKET_PATH):
        for later in MARKET_PATH[i + 2 :]:
            assert not can_transition(current, later), (current, later)


def test_no_status_goes_backwards() -> None:
    for i, current in enumerate(MARKET_PATH):
        for earlier in MARKET_PATH[:i]:
            assert not can_transition(current, earlier), (current, earlier)


@pytest.mark.parametrize("status", NON_TERMINAL)
def test_every_live_status_may_fail(status: OrderStatus) -> None:
    assert can_transition(status, S.FAILED)


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_nothing_leaves_a_terminal_status(status: OrderStatus) -> None:
    assert status.is_terminal
    assert ALLOWED_TRANSITIONS[status] == frozenset()
    for new in OrderStatus:
        assert not can_transition(status, new)


def test_terminal_statuses_are_exactly_the_four_ends() -> None:
    assert {s for s in OrderStatus if s.is_terminal} == {
        S.CONFIRMED,
        S.FAILED,
        S.CANCELLED,
        S.EXPIRED,
    }


def test_no_status_transitions_to_itself() -> None:
    for status in OrderStatus:
        assert not can_transition(status, status)


def test_only_orders_not_yet_routed_may_be_cancelled() -> None:
    assert sources_of(S.CANCELLED) == {S.PENDING, S.WAITING}


def test_resting_orders_wait_then_route_or_expire() -> None:
    assert can_transition(S.PENDING, S.WAITING)
    assert can_transition(S.WAITING, S.ROUTING)
    assert sources_of(S.EXPIRED) == {S.WAITING}


def test_sources_of_agrees_with_can_transition() -> None:
    # The store's conditional UPDATE uses sources_of; it must allow exactly what
    # can_transition allows, or SQL and Python would disagree about a transition.
    for new in OrderStatus:
        expected = {s for s in OrderStatus if can_transition(s, new)}
        assert sources_of(new) == expected, new


def test_a_confirmed_order_cannot_be_reached_except_from_submitted() -> None:
    assert sources_of(S.CONFIRMED) == {S.SUBMITTED}
    assert sources_of(S.PENDING) == frozenset()


def test_only_a_market_order_not_yet_routed_asks_the_router_ahead() -> None:
    """What a queue entry carries for the worker to quote at once: a pending market
    order's pair and amount; a resting order, or one past `pending`, asks nothing."""
    market = new_order("2.5").placed(uuid.uuid4(), datetime.now(UTC))
    assert market.ask == RouteAsk("SOL", "USDC", Decimal("2.5"))
    assert attrs.evolve(market, status=S.ROUTING).ask is None
    assert attrs.evolve(market, type=OrderType.LIMIT).ask is None
