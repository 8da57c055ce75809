"""Schemathesis hooks for the stateful run (SCHEMATHESIS_HOOKS=tests.failure.schemathesis_hooks).

A random order body is almost never valid (its wallet must be base58 of 32 bytes), so
no order would be created and no link followed. Here an order body gets a real wallet,
pair and amount, and loses the fields of resting orders; the rest (slippageBps) stays as
drawn, so that some orders are created and some refused.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from tests.support import order_body


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    if isinstance(body, dict) and "userWallet" in body:
        kept = {k: v for k, v in body.items() if k not in {"type", "limitPrice", "expiresAt"}}
        return {**kept, **order_body(inputAmount="1")}
    return body
