"""The simulated chain's storage in Postgres: every statement on its tables.

A real chain outlives a crash of the engine; so do these tables. They are the chain's
own, not the engine's, which is why their SQL lives here and not in the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from order_engine.batch import Batcher
from order_engine.chain.market import ListedPool
from order_engine.chain.model import (
    PoolState,
    Transaction,
    TxFailure,
    TxOutcome,
    TxStatus,
    curve_of,
)
from order_engine.domain.errors import PoolExists
from order_engine.domain.routes import SwapLeg, price_of
from order_engine.formats import exact_json
from order_engine.routing.pools import Pool

Connection = asyncpg.Connection | PoolConnectionProxy

# Serialises genesis between processes starting at once; "oe-gene" in ASCII.
GENESIS_LOCK_KEY = 0x6F652D67656E65

_POOL_COLUMNS = """
    id, dex, token_a, token_b, reserve_a, reserve_b, kind, fee_bps, max_fee_bps,
    variable_factor, start_price
"""
_OUTCOME_COLUMNS = "signature, status, slot, amount_out, executed_price, failure, reason"

_INSERT_POOL = f"""
INSERT INTO chain_pools (dex, token_a, token_b, reserve_a, reserve_b, kind, fee_bps,
                         max_fee_bps, variable_factor, start_price, launched_slot)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING {_POOL_COLUMNS}
"""

_LIVE_POOLS = f"""
SELECT {_POOL_COLUMNS} FROM chain_pools WHERE launched_slot IS NOT NULL ORDER BY id
"""

# Many transactions at once. One that has already expired when it arrives (its slot is
# too old) is refused: it has no row in the answer. One sent before is answered with
# what the chain knows of it.
_SEND = f"""
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::int[], $4::text[], $5::text[],
                         $6::text[], $7::numeric[], $8::numeric[], $9::text[], $10::bigint[])
    AS u(signature, order_id, attempt, dex, input_token, output_token, input_amount,
         min_amount_out, legs, built_slot)
), sent AS (
    INSERT INTO chain_transactions (signature, order_id, attempt, dex, input_token,
                                    output_token, input_amount, min_amount_out, legs,
                                    built_slot)
    SELECT i.signature, i.order_id, i.attempt, i.dex, i.input_token, i.output_token,
           i.input_amount, i.min_amount_out, i.legs::jsonb, i.built_slot
    FROM input i, chain_head h WHERE h.slot <= i.built_slot + $11::bigint
    ORDER BY i.signature
    ON CONFLICT DO NOTHING
    RETURNING {_OUTCOME_COLUMNS}
)
SELECT {_OUTCOME_COLUMNS} FROM sent
UNION ALL
SELECT {_OUTCOME_COLUMNS} FROM chain_transactions WHERE signature = ANY($1::text[])
"""

# The slot of the newest launch of a pool trading each token (genesis pools launch at 0).
_LAUNCHES = """
SELECT token, max(launched_slot) AS slot
FROM (SELECT token_a AS token, launched_slot FROM chain_pools
      UNION ALL SELECT token_b, launched_slot FROM chain_pools) AS t
WHERE launched_slot IS NOT NULL
GROUP BY token
"""

_ATTEMPT_TAKEN = "SELECT true FROM chain_transactions WHERE order_id = $1 AND attempt = $2"

_OUTCOMES = f"SELECT {_OUTCOME_COLUMNS} FROM chain_transactions WHERE signature = ANY($1)"


def pool_state(row: asyncpg.Record) -> PoolState:
    return PoolState(
        id=row["id"],
        dex=row["dex"],
        token_a=row["token_a"],
        token_b=row["token_b"],
        reserve_a=row["reserve_a"],
        reserve_b=row["reserve_b"],
        kind=row["kind"],
        fee_bps=row["fee_bps"],
        max_fee_bps=row["max_fee_bps"],
        variable_factor=row["variable_factor"],
        start_price=row["start_price"],
    )


def listed(state: PoolState) -> ListedPool:
    return ListedPool(state.id, state.to_pool(), state.start_price)


def state_of(item: ListedPool) -> PoolState:
    pool = item.pool
    kind, fee_bps, max_fee_bps, variable_factor = curve_of(pool)
    return PoolState(
        id=item.id,
        dex=pool.dex,
        token_a=pool.token_a.symbol,
        token_b=pool.token_b.symbol,
        reserve_a=pool.reserve_a,
        reserve_b=pool.reserve_b,
        kind=kind,
        fee_bps=fee_bps,
        max_fee_bps=max_fee_bps,
        variable_factor=variable_factor,
        start_price=item.start_price,
    )


def outcome(row: asyncpg.Record) -> TxOutcome:
    return TxOutcome(
        signature=row["signature"],
        status=TxStatus(row["status"]),
        slot=row["slot"],
        amount_out=row["amount_out"],
        executed_price=row["executed_price"],
        failure=TxFailure(row["failure"]) if row["failure"] else None,
        reason=row["reason"],
    )


def transaction(row: asyncpg.Record) -> Transaction:
    return Transaction(
        signature=row["signature"],
        order_id=row["order_id"],
        attempt=row["attempt"],
        dex=row["dex"],
        input_token=row["input_token"],
        output_token=row["output_token"],
        input_amount=row["input_amount"],
        min_amount_out=row["min_amount_out"],
        legs=exact_json.structure(row["legs"], tuple[SwapLeg, ...]),
        built_slot=row["built_slot"],
    )


async def insert_pool(conn: Connection, pool: Pool, *, launched_slot: int | None) -> PoolState:
    """List a new pool, trading from `launched_slot` (None: from the next slot)."""
    kind, fee_bps, max_fee_bps, variable_factor = curve_of(pool)
    try:
        row = await conn.fetchrow(
            _INSERT_POOL,
            pool.dex,
            pool.token_a.symbol,
            pool.token_b.symbol,
            pool.reserve_a,
            pool.reserve_b,
            kind,
            fee_bps,
            max_fee_bps,
            variable_factor,
            price_of(pool.reserve_a, pool.reserve_b),
            launched_slot,
        )
    except asyncpg.UniqueViolationError:
        raise PoolExists(
            f"{pool.dex} already has a {pool.token_a.symbol}/{pool.token_b.symbol} pool"
        ) from None
    assert row is not None
    return pool_state(row)


class Ledger:
    """The chain's tables as its clients see them: genesis, pools, sending and asking."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        # The transactions sent in one turn of the loop reach the chain in one statement.
        self._sends: Batcher[tuple[Transaction, int], TxOutcome | None] = Batcher(
            self._send_batch, key=lambda item: item[0].signature
        )

    async def genesis(self, pools: Iterable[Pool], seed: int) -> bool:
        """Slot 0 and the opening pools, once per chain; True if this call made them."""
        async with (
            self._pool.acquire(timeout=self._acquire_timeout) as conn,
            conn.transaction(),
        ):
            await conn.execute("SELECT pg_advisory_xact_lock($1)", GENESIS_LOCK_KEY)
            if await conn.fetchval("SELECT slot FROM chain_head") is not None:
                return False
            await conn.execute("INSERT INTO chain_head (slot, seed) VALUES (0, $1)", seed)
            await conn.execute("INSERT INTO chain_slots (slot, producer) VALUES (0, 'genesis')")
            for pool in pools:
                await insert_pool(conn, pool, launched_slot=0)
            return True

    async def snapshot(self) -> tuple[int, list[PoolState]]:
        """The newest slot and every pool trading in it, read as of one moment."""
        async with (
            self._pool.acquire(timeout=self._acquire_timeout) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            slot = await conn.fetchval("SELECT slot FROM chain_head")
            rows = await conn.fetch(_LIVE_POOLS)
        return int(slot), [pool_state(r) for r in rows]

    async def request_pool(self, pool: Pool) -> PoolState:
        """List a pool that trades from the next slot; PoolExists if its pair has one."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            return await insert_pool(conn, pool, launched_slot=None)

    async def send(self, tx: Transaction, *, expiry_slots: int) -> TxOutcome | None:
        """Send `tx`: idempotent, so sending it again answers what the chain knows of it.
        None when the chain refuses it because it expired before it arrived."""
        return await self._sends((tx, expiry_slots))

    async def _send_batch(
        self, batch: list[tuple[Transaction, int]]
    ) -> list[TxOutcome | BaseException | None]:
        answered: dict[str, TxOutcome | BaseException | None] = {}
        for expiry_slots in {expiry for _, expiry in batch}:
            txs = [tx for tx, expiry in batch if expiry == expiry_slots]
            answered |= await self._send_txs(txs, expiry_slots)
        return [answered[tx.signature] for tx, _ in batch]

    async def _send_txs(
        self, txs: list[Transaction], expiry_slots: int
    ) -> dict[str, TxOutcome | BaseException | None]:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(
                _SEND,
                [tx.signature for tx in txs],
                [tx.order_id for tx in txs],
                [tx.attempt for tx in txs],
                [tx.dex for tx in txs],
                [tx.input_token for tx in txs],
                [tx.output_token for tx in txs],
                [tx.input_amount for tx in txs],
                [tx.min_amount_out for tx in txs],
                # As text: a list inside an array parameter would be read as a dimension.
                [orjson.dumps(exact_json.unstructure(tx.legs)).decode() for tx in txs],
                [tx.built_slot for tx in txs],
                expiry_slots,
            )
            found: dict[str, TxOutcome | BaseException | None] = {
                row["signature"]: outcome(row) for row in rows
            }
            for tx in txs:
                if tx.signature not in found:
                    found[tx.signature] = (
                        RuntimeError(
                            f"order {tx.order_id} already sent another transaction as attempt "
                            f"{tx.attempt}; {tx.signature} is not it"
                        )
                        if await conn.fetchval(_ATTEMPT_TAKEN, tx.order_id, tx.attempt)
                        else None
                    )
        return found

    async def outcomes(self, signatures: Sequence[str]) -> dict[str, TxOutcome]:
        """What the chain knows of each signature; one it never saw is left out."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_OUTCOMES, list(signatures))
        return {r["signature"]: outcome(r) for r in rows}

    async def launches(self) -> dict[str, int]:
        """For each token some pool trades, the slot of the newest launch of such a pool."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_LAUNCHES)
        return {r["token"]: int(r["slot"]) for r in rows}

    async def head(self) -> int:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            return int(await conn.fetchval("SELECT slot FROM chain_head"))
