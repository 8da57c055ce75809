"""The slot producer: one process at a time closes a slot every CHAIN_SLOT_MS.

Closing a slot is one Postgres transaction: expire what is too old to land, apply the
transactions that are due in the order they were sent (each lands, fails for slippage,
or is refused by the DEX), step the price walk, launch what is due, record the slot.
After the commit, the slot's summary goes to this process's chain view and, on Redis,
to every other process's.

The leader holds an advisory lock (leader.py); a slot's transaction also checks, inside
itself, that the lock is still held by that leader's connection, so that a process that
lost the lead without noticing cannot close a slot. The head row serialises producers
anyway: no slot number is produced twice or skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import attrs
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from order_engine.chain.ledger import insert_pool, listed, pool_state, state_of, transaction
from order_engine.chain.market import Market, apply_moves, pick_launch, walk
from order_engine.chain.model import (
    SlotSummary,
    Transaction,
    TxFailure,
    TxOutcome,
    TxStatus,
    encode_summary,
)
from order_engine.domain.routes import price_of
from order_engine.leader import Leadership
from order_engine.outage import DEPENDENCY_ERRORS
from order_engine.routing.pools import Pool
from order_engine.routing.venues import NoPool

log = logging.getLogger(__name__)


@attrs.frozen
class SlotConfig:
    slot_s: float = 0.4
    execution_delay_s: float = 2.5
    failure_rate: float = 0.0
    expiry_slots: int = 150
    max_transactions: int = 5000
    """Transactions one slot applies at most; the rest wait for the next."""
    walk_every: int = 0
    """Slots between two steps of the price walk; 0 stops it."""
    volatility: float = 0.0
    """Standard deviation of one step of the walk (a fraction: 10 bps is 0.001)."""
    launch_every: int = 0
    """Slots between two seeded pool launches; 0 turns them off."""
    seed: int | None = None
    """Overrides the seed the chain drew at genesis."""


class NotLeader(Exception):
    """This process no longer holds the producer's lock; the slot was not closed."""


_ADVANCE = "UPDATE chain_head SET slot = slot + 1 RETURNING slot, seed"

_HOLDS_LOCK = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND pid = $1
      AND classid = $2::oid AND objid = $3::oid AND objsubid = 2
)
"""

_EXPIRE = """
UPDATE chain_transactions SET status = 'expired', slot = $1,
    reason = format('not applied within %s slots of slot %s', $2::bigint, built_slot)
WHERE status = 'pending' AND built_slot + $2::bigint < $1
RETURNING signature, slot, reason
"""

_DUE = """
SELECT signature, order_id, attempt, dex, input_token, output_token, input_amount,
       min_amount_out, legs, built_slot
FROM chain_transactions
WHERE status = 'pending' AND sent_at <= clock_timestamp() - $1::interval
  AND built_slot + $2 >= $3
ORDER BY seq
LIMIT $4
FOR UPDATE
"""

_LANDED_ORDERS = """
SELECT order_id FROM chain_transactions WHERE status = 'landed' AND order_id = ANY($1)
"""

_POOLS = """
SELECT id, dex, token_a, token_b, reserve_a, reserve_b, kind, fee_bps, max_fee_bps,
       variable_factor, start_price
FROM chain_pools WHERE launched_slot IS NOT NULL ORDER BY id FOR UPDATE
"""

_LAUNCH_REQUESTED = """
UPDATE chain_pools SET launched_slot = $1 WHERE launched_slot IS NULL
RETURNING id, dex, token_a, token_b, reserve_a, reserve_b, kind, fee_bps, max_fee_bps,
          variable_factor, start_price
"""

_WRITE_POOLS = """
UPDATE chain_pools p SET reserve_a = u.reserve_a, reserve_b = u.reserve_b
FROM unnest($1::int[], $2::numeric[], $3::numeric[]) AS u(id, reserve_a, reserve_b)
WHERE p.id = u.id
"""

_WRITE_OUTCOMES = """
UPDATE chain_transactions t SET
    status = u.status, failure = u.failure, reason = u.reason,
    amount_out = u.amount_out, executed_price = u.executed_price, slot = $1
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::numeric[])
    AS u(signature, status, failure, reason, amount_out, executed_price)
WHERE t.signature = u.signature
"""

_RECORD_SLOT = """
INSERT INTO chain_slots (slot, producer, landed, failed, expired, work_ms)
VALUES ($1, $2, $3, $4, $5, $6)
"""


def _draw(seed: int, *parts: object) -> random.Random:
    """A generator for one named draw of the chain: the same numbers whichever process
    produces the slot, and whenever."""
    return random.Random(":".join(map(str, (seed, *parts))))


def apply_transaction(
    market: Market, tx: Transaction, *, seed: int, failure_rate: float, already_landed: bool
) -> tuple[TxOutcome, set[int]]:
    """Run `tx` on the market's current reserves: every leg, or none. Returns its outcome
    and the pools it moved."""

    def failed(failure: TxFailure, reason: str) -> tuple[TxOutcome, set[int]]:
        return TxOutcome(tx.signature, TxStatus.FAILED, failure=failure, reason=reason), set()

    if already_landed:
        return failed(TxFailure.REFUSED, f"order {tx.order_id} already has a landed swap")
    if _draw(seed, "refuse", tx.signature).random() < failure_rate:
        return failed(TxFailure.REFUSED, f"{tx.dex}: transaction failed (simulated network error)")
    try:
        moves, amount_out = market.dry_run(tx.legs, tx.output_token)
    except NoPool as exc:
        return failed(TxFailure.REFUSED, str(exc))
    if amount_out < tx.min_amount_out:
        return failed(
            TxFailure.SLIPPAGE,
            f"the pool would pay {amount_out}, below the minimum of {tx.min_amount_out}",
        )
    apply_moves(moves)
    landed = TxOutcome(
        tx.signature,
        TxStatus.LANDED,
        amount_out=amount_out,
        executed_price=price_of(tx.input_amount, amount_out),
    )
    return landed, {listed_pool.id for listed_pool, *_ in moves}


def walk_market(market: Market, *, seed: int, slot: int, volatility: float) -> set[int]:
    """One step of every pool's seeded price walk; returns the pools it moved."""
    for item in market.listed():
        walk(item, _draw(seed, "walk", slot, item.id).gauss(0.0, volatility))
    return {item.id for item in market.listed()}


def scheduled_launch(market: Market, *, seed: int, slot: int) -> Pool | None:
    """The pool the launch timer opens in `slot`, if any token is left without one."""
    return pick_launch(market, _draw(seed, "launch", slot))


class SlotProducer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        channel: str,
        leadership: Leadership,
        config: SlotConfig,
        *,
        name: str,
        on_summary: Callable[[SlotSummary], None],
        on_closed: Callable[[SlotSummary, float], None] | None = None,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._channel = channel
        self._leadership = leadership
        self.config = config
        self._name = name
        self._on_summary = on_summary
        self._on_closed = on_closed
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="slot-producer")

    async def stop(self) -> None:
        """Between slots, never inside one: a slot's transaction is not cancelled."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stopping.is_set():
            try:
                if await self._leadership.try_lead():
                    await self.produce()
            except NotLeader:
                log.warning("slot producer: lost the lead")
            except DEPENDENCY_ERRORS as exc:
                log.warning("slot producer: %r", exc)
            except Exception:
                log.exception("slot producer: closing a slot failed")
            # Slots keep their rhythm; one that overran is not followed by a burst.
            next_at = max(next_at + self.config.slot_s, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), next_at - time.monotonic())

    async def produce(self) -> SlotSummary:
        """Close one slot and tell every process about it."""
        started = time.perf_counter()
        summary = await self.close_slot()
        self._on_summary(summary)
        if self._on_closed is not None:
            self._on_closed(summary, time.perf_counter() - started)
        try:
            await self._redis.publish(self._channel, encode_summary(summary))
        except (RedisError, OSError) as exc:
            # The other processes see a gap at the next summary and reload.
            log.warning("could not publish slot %d: %r", summary.slot, exc)
        return summary

    async def close_slot(self) -> SlotSummary:
        """One slot, in one transaction. Raises NotLeader (and changes nothing) if this
        process does not hold the producer's lock."""
        config = self.config
        async with self._pool.acquire(timeout=5.0) as conn, conn.transaction():
            started = time.perf_counter()
            holder = self._leadership.backend_pid
            classid, objid = self._leadership.key
            if holder is None or not await conn.fetchval(_HOLDS_LOCK, holder, classid, objid):
                raise NotLeader
            head = await conn.fetchrow(_ADVANCE)
            assert head is not None
            slot = int(head["slot"])
            seed = config.seed if config.seed is not None else int(head["seed"])

            outcomes = [
                TxOutcome(r["signature"], TxStatus.EXPIRED, slot=slot, reason=r["reason"])
                for r in await conn.fetch(_EXPIRE, slot, config.expiry_slots)
            ]
            expired = len(outcomes)
            due = [
                transaction(r)
                for r in await conn.fetch(
                    _DUE,
                    timedelta(seconds=config.execution_delay_s),
                    config.expiry_slots,
                    slot,
                    config.max_transactions,
                )
            ]
            market = Market(listed(pool_state(r)) for r in await conn.fetch(_POOLS))
            landed_orders = {
                r["order_id"]
                for r in await conn.fetch(_LANDED_ORDERS, list({tx.order_id for tx in due}))
            }
            changed: set[int] = set()
            applied: list[TxOutcome] = []
            for tx in due:
                result, moved = apply_transaction(
                    market,
                    tx,
                    seed=seed,
                    failure_rate=config.failure_rate,
                    already_landed=tx.order_id in landed_orders,
                )
                if result.status is TxStatus.LANDED:
                    landed_orders.add(tx.order_id)
                applied.append(attrs.evolve(result, slot=slot))
                changed |= moved

            if config.walk_every and slot % config.walk_every == 0:
                changed |= walk_market(market, seed=seed, slot=slot, volatility=config.volatility)

            launched = [pool_state(r) for r in await conn.fetch(_LAUNCH_REQUESTED, slot)]
            for state in launched:
                market.add(listed(state))
            if config.launch_every and slot % config.launch_every == 0:
                new = scheduled_launch(market, seed=seed, slot=slot)
                if new is not None:
                    launched.append(await insert_pool(conn, new, launched_slot=slot))
                    log.info("slot %d launched a %s %s/SOL pool", slot, new.dex, new.token_a)

            states = [state_of(item) for item in market.listed() if item.id in changed]
            if states:
                await conn.execute(
                    _WRITE_POOLS,
                    [s.id for s in states],
                    [s.reserve_a for s in states],
                    [s.reserve_b for s in states],
                )
            if applied:
                await conn.execute(
                    _WRITE_OUTCOMES,
                    slot,
                    [o.signature for o in applied],
                    [o.status.value for o in applied],
                    [o.failure.value if o.failure else None for o in applied],
                    [o.reason for o in applied],
                    [o.amount_out for o in applied],
                    [o.executed_price for o in applied],
                )
            landed = sum(1 for o in applied if o.status is TxStatus.LANDED)
            await conn.execute(
                _RECORD_SLOT,
                slot,
                self._name,
                landed,
                len(applied) - landed,
                expired,
                (time.perf_counter() - started) * 1000,
            )
        return SlotSummary(
            slot=slot,
            pools=tuple(states),
            launched=tuple(launched),
            outcomes=tuple(outcomes + applied),
        )
