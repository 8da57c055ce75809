"""The slot producer: one process at a time closes a slot every CHAIN_SLOT_MS.

Closing a slot is one Postgres transaction: expire what is too old to land, apply the
transactions that are due in the order they were sent (each lands, fails for slippage,
or is refused by the DEX), step the price walk, launch what is due, record the slot.
After the commit, the slot's summary goes to this process's chain view and, on Redis,
to every other process's.

A slot has a time, every CHAIN_SLOT_MS. Its work starts ahead of that time (head_start:
by about as long as recent slots took, never by more than the execution delay, so that
whatever is due by then has been sent, and not at all while slots fall behind), applies
what is due by its time and commits; its summary goes out at its time. Processes hear of
a slot when it is due, not later by the slot's own work, as a validator builds its block
during its slot.

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
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import attrs
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from order_engine.chain.ledger import Connection, insert_pool, listed, pool_state, state_of
from order_engine.chain.market import Market, apply_moves, pick_launch, walk
from order_engine.chain.model import (
    PoolState,
    SlotSummary,
    Transaction,
    TxFailure,
    TxOutcome,
    TxStatus,
    encode_summary,
)
from order_engine.domain.routes import SwapLeg, price_of
from order_engine.formats import exact_json
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


# Opens a slot in one round trip: checks that this process's lock connection still holds
# the producer's lock, advances the head, expires what is too old, takes the due
# transactions (locked), launches the pools requested since the last slot, and names the
# orders among the due ones that already have a landed swap. Decimals travel as text.
# The slot's time comes from the producer's clock, the same host's as Postgres's here: the
# statement may start well after it was sent, so a time read inside it would take in
# transactions due after the slot is announced.
_OPEN = """
WITH head AS (
    UPDATE chain_head SET slot = slot + 1
    WHERE EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND pid = $1
          AND classid = $2::oid AND objid = $3::oid AND objsubid = 2
    )
    RETURNING slot, seed
), expired AS (
    UPDATE chain_transactions t SET status = 'expired', slot = head.slot,
        reason = format('not applied within %s slots of slot %s', $4::bigint, t.built_slot)
    FROM head
    WHERE t.status = 'pending' AND t.built_slot + $4::bigint < head.slot
    RETURNING t.signature, t.reason
), due AS (
    SELECT t.signature, t.order_id, t.attempt, t.dex, t.input_token, t.output_token,
           t.input_amount::text AS input_amount, t.min_amount_out::text AS min_amount_out,
           t.legs, t.built_slot, t.seq
    FROM chain_transactions t, head
    WHERE t.status = 'pending' AND t.sent_at <= $5::timestamptz
      AND t.built_slot + $4::bigint >= head.slot
    ORDER BY t.seq
    LIMIT $6
    FOR UPDATE OF t
), launched AS (
    UPDATE chain_pools p SET launched_slot = head.slot FROM head
    WHERE p.launched_slot IS NULL
    RETURNING p.id, p.dex, p.token_a, p.token_b, p.reserve_a::text AS reserve_a,
              p.reserve_b::text AS reserve_b, p.kind, p.fee_bps, p.max_fee_bps,
              p.variable_factor::text AS variable_factor, p.start_price::text AS start_price
)
SELECT
    (SELECT slot FROM head) AS slot,
    (SELECT seed FROM head) AS seed,
    (SELECT coalesce(jsonb_agg(expired), '[]') FROM expired) AS expired,
    (SELECT coalesce(jsonb_agg(due ORDER BY seq), '[]') FROM due) AS due,
    (SELECT coalesce(jsonb_agg(launched), '[]') FROM launched) AS launched,
    ARRAY(
        SELECT d.order_id FROM due d
        WHERE EXISTS (
            SELECT 1 FROM chain_transactions l
            WHERE l.order_id = d.order_id AND l.status = 'landed'
        )
    ) AS landed_orders
"""

_POOLS = """
SELECT id, dex, token_a, token_b, reserve_a, reserve_b, kind, fee_bps, max_fee_bps,
       variable_factor, start_price
FROM chain_pools WHERE launched_slot IS NOT NULL ORDER BY id
"""

# Closes a slot in one round trip: the pools' reserves, the outcomes, and the slot's row.
_CLOSE = """
WITH pools AS (
    UPDATE chain_pools p SET reserve_a = u.reserve_a, reserve_b = u.reserve_b
    FROM unnest($7::int[], $8::numeric[], $9::numeric[]) AS u(id, reserve_a, reserve_b)
    WHERE p.id = u.id
), outcomes AS (
    UPDATE chain_transactions t SET
        status = u.status, failure = u.failure, reason = u.reason,
        amount_out = u.amount_out, executed_price = u.executed_price, slot = $1
    FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::numeric[],
                $15::numeric[])
        AS u(signature, status, failure, reason, amount_out, executed_price)
    WHERE t.signature = u.signature
)
INSERT INTO chain_slots (slot, producer, landed, failed, expired, work_ms, closed_at)
VALUES ($1, $2, $3, $4, $5, $6, greatest($16::timestamptz, statement_timestamp()))
"""


def _until(moment: float | None) -> float:
    """Seconds from now to a monotonic `moment`; 0 once it has passed, or for None."""
    return 0.0 if moment is None else max(0.0, moment - time.monotonic())


def head_start(work: Iterable[float], config: SlotConfig) -> float:
    """How long before its time a slot starts, from how long the last slots took: half
    as long again as the longest, at most half a slot, and never longer than the
    execution delay, so that whatever is due by the slot's time has been sent. No head
    start while one of them took more than half a slot: on a machine that far behind, it
    made the slowest orders slower (docs/benchmarks.md)."""
    longest = max(work, default=0.0)
    if longest > config.slot_s / 2:
        return 0.0
    return min(1.5 * longest, config.slot_s / 2, config.execution_delay_s)


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


def _due(row: dict[str, Any]) -> Transaction:
    """A due transaction as _OPEN gives it, in JSON."""
    return Transaction(
        signature=row["signature"],
        order_id=uuid.UUID(row["order_id"]),
        attempt=row["attempt"],
        dex=row["dex"],
        input_token=row["input_token"],
        output_token=row["output_token"],
        input_amount=Decimal(row["input_amount"]),
        min_amount_out=Decimal(row["min_amount_out"]),
        legs=exact_json.structure(row["legs"], tuple[SwapLeg, ...]),
        built_slot=row["built_slot"],
    )


def _launched(row: dict[str, Any]) -> PoolState:
    """A pool launched by _OPEN, in JSON."""
    return PoolState(
        id=row["id"],
        dex=row["dex"],
        token_a=row["token_a"],
        token_b=row["token_b"],
        reserve_a=Decimal(row["reserve_a"]),
        reserve_b=Decimal(row["reserve_b"]),
        kind=row["kind"],
        fee_bps=row["fee_bps"],
        max_fee_bps=row["max_fee_bps"],
        variable_factor=Decimal(row["variable_factor"]),
        start_price=Decimal(row["start_price"]),
    )


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
        # The market of this producer's slots, kept between them while it leads: it is the
        # only writer of reserves then, so reading them back each slot would tell nothing.
        self._market: Market | None = None
        self._market_holder: int | None = None
        # How long this producer's last slots took to close, commit included.
        self._work: deque[float] = deque(maxlen=8)

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
                    await self.produce(closes_at=next_at)
            except NotLeader:
                log.warning("slot producer: lost the lead; asking for it again")
                with contextlib.suppress(*DEPENDENCY_ERRORS):
                    await self._leadership.resign()
            except DEPENDENCY_ERRORS as exc:
                log.warning("slot producer: %r", exc)
            except Exception:
                log.exception("slot producer: closing a slot failed")
            # Slots keep their rhythm; one that overran is not followed by a burst.
            next_at = max(next_at + self.config.slot_s, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), next_at - self.lead() - time.monotonic()
                )

    def lead(self) -> float:
        """How long before its time the next slot starts (head_start)."""
        return head_start(self._work, self.config)

    async def produce(self, *, closes_at: float | None = None) -> SlotSummary:
        """Close one slot and tell every process about it. `closes_at` (monotonic) is the
        slot's time: the slot applies what is due by then and is announced no earlier;
        None is now."""
        started = time.perf_counter()
        summary = await self.close_slot(closes_at)
        work = time.perf_counter() - started
        self._work.append(work)
        if early := _until(closes_at):
            await asyncio.sleep(early)
        self._on_summary(summary)
        if self._on_closed is not None:
            self._on_closed(summary, work)
        try:
            await self._redis.publish(self._channel, encode_summary(summary))
        except (RedisError, OSError) as exc:
            # The other processes see a gap at the next summary and reload.
            log.warning("could not publish slot %d: %r", summary.slot, exc)
        return summary

    async def _market_for(self, conn: Connection, holder: int) -> Market:
        """The market as this producer left it at its last slot; read from the chain's
        tables again whenever it (re)took the lead, since another may have moved it."""
        if self._market is None or self._market_holder != holder:
            self._market = Market(listed(pool_state(r)) for r in await conn.fetch(_POOLS))
            self._market_holder = holder
        return self._market

    async def close_slot(self, closes_at: float | None = None) -> SlotSummary:
        """One slot, in one transaction, of what is due by `closes_at` (monotonic; None is
        now). Raises NotLeader (and changes nothing) if this process does not hold the
        producer's lock."""
        try:
            return await self._close_slot(closes_at)
        except BaseException:
            # The slot may have moved the market in memory and then rolled back.
            self._market = None
            raise

    async def _close_slot(self, closes_at: float | None) -> SlotSummary:
        config = self.config
        async with self._pool.acquire(timeout=5.0) as conn, conn.transaction():
            started = time.perf_counter()
            holder = self._leadership.backend_pid
            if holder is None:
                raise NotLeader
            market = await self._market_for(conn, holder)
            # The slot's time on the wall clock, or now once that has passed.
            at = datetime.now(UTC) + timedelta(seconds=_until(closes_at))
            opened = await conn.fetchrow(
                _OPEN,
                holder,
                *self._leadership.key,
                config.expiry_slots,
                at - timedelta(seconds=config.execution_delay_s),
                config.max_transactions,
            )
            assert opened is not None
            if opened["slot"] is None:
                raise NotLeader
            slot = int(opened["slot"])
            seed = config.seed if config.seed is not None else int(opened["seed"])
            outcomes = [
                TxOutcome(e["signature"], TxStatus.EXPIRED, slot=slot, reason=e["reason"])
                for e in opened["expired"]
            ]
            expired = len(outcomes)
            landed_orders = set(opened["landed_orders"])
            changed: set[int] = set()
            applied: list[TxOutcome] = []
            for tx in map(_due, opened["due"]):
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

            launched = [_launched(p) for p in opened["launched"]]
            for state in launched:
                market.add(listed(state))
            if config.launch_every and slot % config.launch_every == 0:
                new = scheduled_launch(market, seed=seed, slot=slot)
                if new is not None:
                    state = await insert_pool(conn, new, launched_slot=slot)
                    market.add(listed(state))
                    launched.append(state)
                    log.info("slot %d launched a %s %s/SOL pool", slot, new.dex, new.token_a)

            states = [state_of(item) for item in market.listed() if item.id in changed]
            landed = sum(1 for o in applied if o.status is TxStatus.LANDED)
            await conn.execute(
                _CLOSE,
                slot,
                self._name,
                landed,
                len(applied) - landed,
                expired,
                (time.perf_counter() - started) * 1000,
                [s.id for s in states],
                [s.reserve_a for s in states],
                [s.reserve_b for s in states],
                [o.signature for o in applied],
                [o.status.value for o in applied],
                [o.failure.value if o.failure else None for o in applied],
                [o.reason for o in applied],
                [o.amount_out for o in applied],
                [o.executed_price for o in applied],
                at,
            )
        return SlotSummary(
            slot=slot,
            pools=tuple(states),
            launched=tuple(launched),
            outcomes=tuple(outcomes + applied),
        )
