"""When a transiently failed order is tried again, and whether it is tried at all (pure)."""

from __future__ import annotations

import random

import attrs


@attrs.frozen
class RetryPolicy:
    max_attempts: int = 3
    base_s: float = 0.5
    max_s: float = 30.0

    def allows(self, failed_attempt: int) -> bool:
        """Whether attempt number `failed_attempt` (1-based) may be followed by another."""
        return failed_attempt < self.max_attempts

    def delay_s(self, failed_attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter.

        Full jitter (a uniform draw below the exponential ceiling) spreads the orders
        that one DEX outage failed together, so that they do not all come back at the
        same instant and fail together again.
        """
        ceiling = min(self.max_s, self.base_s * 2 ** (failed_attempt - 1))
        return rng.uniform(0, ceiling)
