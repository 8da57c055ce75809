"""The retry policy: how many attempts, and how long between them."""

from __future__ import annotations

import random

import pytest

from order_engine.engine.retry import RetryPolicy


def test_three_attempts_in_all_by_default() -> None:
    policy = RetryPolicy()
    assert [policy.allows(n) for n in (1, 2, 3)] == [True, True, False]


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 30.0)]
)
def test_delay_stays_under_an_exponential_ceiling_capped_at_the_maximum(
    attempt: int, ceiling: float
) -> None:
    policy = RetryPolicy(max_attempts=10, base_s=0.5, max_s=30.0)
    rng = random.Random(1)
    delays = [policy.delay_s(attempt, rng) for _ in range(500)]
    assert all(0 <= d <= ceiling for d in delays)
    # Full jitter: the draws spread over the whole range, not bunched at one value.
    assert max(delays) > 0.9 * ceiling
    assert min(delays) < 0.1 * ceiling


def test_same_seed_same_delays() -> None:
    policy = RetryPolicy()
    assert [policy.delay_s(2, random.Random(5)) for _ in range(3)] == [
        policy.delay_s(2, random.Random(5))
    ] * 3
