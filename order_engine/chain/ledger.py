"""The simulated chain's ledger: one row per settled swap, in Postgres.

A real chain outlives a crash of the engine; so does this table. It is the simulated
chain's own storage, not the engine's, which is why its SQL lives here and not in
the store.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from order_engine.routing.venues import SwapReceipt, SwapTransaction

_FIND_BY_SIGNATURE = """
SELECT signature, order_id, dex, amount_out, executed_price FROM chain_swaps
WHERE signature = $1
"""

_FIND_BY_ORDER = """
SELECT signature, order_id, dex, amount_out, executed_price FROM chain_swaps
WHERE order_id = $1
"""

_RECORD = """
INSERT INTO chain_swaps (signature, order_id, dex, input_token, output_token,
                         input_amount, amount_out, executed_price)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT DO NOTHING
RETURNING signature, order_id, dex, amount_out, executed_price
"""


def _receipt(row: asyncpg.Record) -> SwapReceipt:
    return SwapReceipt(
        signature=row["signature"],
        order_id=row["order_id"],
        dex=row["dex"],
        amount_out=row["amount_out"],
        executed_price=row["executed_price"],
    )


class SimulatedChain:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, signature: str) -> SwapReceipt | None:
        async with self._pool.acquire(timeout=5.0) as conn:
            row = await conn.fetchrow(_FIND_BY_SIGNATURE, signature)
        return None if row is None else _receipt(row)

    async def settle(
        self, tx: SwapTransaction, amount_out: Decimal, executed_price: Decimal
    ) -> tuple[SwapReceipt, bool]:
        """Record the swap; return its receipt and whether this call is what settled it.

        A signature, or an order, that is already settled is not settled again: the
        receipt of the earlier swap comes back with False.
        """
        async with self._pool.acquire(timeout=5.0) as conn:
            row = await conn.fetchrow(
                _RECORD,
                tx.signature,
                tx.order_id,
                tx.dex,
                tx.input_token,
                tx.output_token,
                tx.input_amount,
                amount_out,
                executed_price,
            )
            if row is not None:
                return _receipt(row), True
            earlier = await conn.fetchrow(_FIND_BY_ORDER, tx.order_id)
        if earlier is None:
            raise RuntimeError(f"swap {tx.signature} conflicted but no row explains it")
        return _receipt(earlier), False
