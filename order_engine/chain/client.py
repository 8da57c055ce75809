"""An engine process's connection to the chain, as an RPC node would give it: a view of
the pools, moved forward by slot summaries, and sending transactions and learning their
outcome by signature.

The view is loaded from Postgres at start and after any gap in the slot numbers (a lost
pub/sub message, a reconnect), so it is never more than one summary behind for long.
Outcomes come from the summaries; when none says anything about a signature in time, the
chain is asked directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from decimal import Decimal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from order_engine.chain.ledger import Ledger, listed
from order_engine.chain.market import Market
from order_engine.chain.model import (
    PoolState,
    SlotSummary,
    Transaction,
    TxOutcome,
    TxStatus,
    decode_summary,
    summary_slot,
)
from order_engine.chain.prices import best_price
from order_engine.routing.pools import Pool

log = logging.getLogger(__name__)

RESUBSCRIBE_DELAY_S = 1.0


class ChainClient:
    def __init__(
        self,
        ledger: Ledger,
        redis: aioredis.Redis,
        channel: str,
        *,
        slot_s: float,
        execution_delay_s: float,
        expiry_slots: int,
    ) -> None:
        self._ledger = ledger
        self._redis = redis
        self._channel = channel
        self._slot_s = slot_s
        self._execution_delay_s = execution_delay_s
        self.expiry_slots = expiry_slots
        self.market = Market()
        self.slot = -1
        self.updated_at = time.monotonic()
        self._waiters: dict[str, set[asyncio.Future[TxOutcome]]] = {}
        self._slot_changed = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Pair prices of the view as it is now; emptied whenever it moves.
        self._prices: dict[tuple[str, str], Decimal | None] = {}

    @property
    def current(self) -> bool:
        """Whether the view moved recently: slots are being produced and reach it."""
        return time.monotonic() - self.updated_at <= max(10 * self._slot_s, 5.0)

    async def start(self) -> None:
        """Subscribe to the summaries, then load the view, so that nothing committed in
        between is missed."""
        self._listener = asyncio.create_task(self._listen(), name="chain-listener")
        await self._subscribed.wait()
        await self.reload()

    async def stop(self) -> None:
        for task in (self._listener, self._reloading):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def reload(self) -> None:
        """Load the view from the chain's tables, and settle every watched signature the
        chain has an outcome for (their summaries may be the ones that were missed)."""
        slot, states = await self._ledger.snapshot()
        if slot >= self.slot:
            self.market = Market(listed(s) for s in states)
            self._advance(slot)
        watched = list(self._waiters)
        if watched:
            for found in (await self._ledger.outcomes(watched)).values():
                self._resolve(found)

    def apply(self, summary: SlotSummary) -> None:
        """Move the view forward by one slot; a gap in the numbers means reloading."""
        if summary.slot <= self.slot:
            return
        if summary.slot > self.slot + 1:
            log.warning("chain view at slot %d missed up to %d: reloading", self.slot, summary.slot)
            self._reload_soon()
            return
        for state in summary.pools:
            known = self.market.by_id(state.id)
            if known is None:
                self.market.add(listed(state))
            else:
                known.pool.reserve_a = state.reserve_a
                known.pool.reserve_b = state.reserve_b
        for state in summary.launched:
            if self.market.by_id(state.id) is None:
                self.market.add(listed(state))
        self._advance(summary.slot)
        for found in summary.outcomes:
            self._resolve(found)

    def best_price(self, input_symbol: str, output_symbol: str) -> Decimal | None:
        """The pair's best price in this view (chain/prices.py), worked out once a slot."""
        key = (input_symbol, output_symbol)
        if key not in self._prices:
            self._prices[key] = best_price(self.market, input_symbol, output_symbol)
        return self._prices[key]

    def _advance(self, slot: int) -> None:
        self._prices = {}
        self.slot = slot
        self.updated_at = time.monotonic()
        self._slot_changed.set()
        self._slot_changed = asyncio.Event()

    def _reload_soon(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.create_task(self._reload_logged(), name="chain-reload")

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Exception:
            log.exception("chain view reload failed; the next summary tries again")

    async def launch(self, pool: Pool, *, timeout_s: float) -> tuple[PoolState, int | None]:
        """Ask the chain to launch `pool` in its next slot (PoolExists if its pair has one
        on that DEX); wait up to `timeout_s` for this view to trade it, and return its
        state and the slot from which it trades (None if that took longer)."""
        state = await self._ledger.request_pool(pool)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.market.by_id(state.id) is None:
                    await self._slot_changed.wait()
                return state, self.slot
        return state, None

    async def launches(self) -> dict[str, int]:
        """For each traded token, the slot of the newest launch of a pool trading it."""
        return await self._ledger.launches()

    async def wait_for_slot(self, slot: int) -> None:
        """Until the view has reached `slot`."""
        while self.slot < slot:
            await self._slot_changed.wait()

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if self._subscribed.is_set():
                    # Summaries published while we were away are gone: catch up.
                    self._reload_soon()
                self._subscribed.set()
                async for message in pubsub.listen():
                    if summary_slot(message["data"]) > self.slot:
                        self.apply(decode_summary(message["data"]))
            except (RedisError, OSError) as exc:
                log.warning("chain listener lost Redis (%s); resubscribing", exc)
                self._subscribed.set()
                await asyncio.sleep(RESUBSCRIBE_DELAY_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    @contextlib.contextmanager
    def _watch(self, signature: str) -> Iterator[asyncio.Future[TxOutcome]]:
        future: asyncio.Future[TxOutcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(signature, set()).add(future)
        try:
            yield future
        finally:
            waiters = self._waiters.get(signature)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[signature]

    def _resolve(self, found: TxOutcome) -> None:
        if not found.final:
            return
        for future in self._waiters.get(found.signature, ()):
            if not future.done():
                future.set_result(found)

    def _expired(self, tx: Transaction) -> TxOutcome:
        return TxOutcome(signature=tx.signature, status=TxStatus.EXPIRED)

    async def execute(self, tx: Transaction) -> TxOutcome:
        """Send `tx` (again, if it was sent before: the chain knows it by its signature)
        and wait for its final outcome."""
        with self._watch(tx.signature) as future:
            sent = await self._ledger.send(tx, expiry_slots=self.expiry_slots)
            if sent is None:
                return self._expired(tx)
            if sent.final:
                return sent
            return await self._confirm(tx, future)

    async def outcome(self, tx: Transaction) -> TxOutcome:
        """The final outcome of `tx` without sending it: what the chain did with it, or
        EXPIRED once it can no longer land because it was never sent in time."""
        with self._watch(tx.signature) as future:
            return await self._confirm(tx, future)

    async def _confirm(self, tx: Transaction, future: asyncio.Future[TxOutcome]) -> TxOutcome:
        # The first look at the chain comes once the transaction should have been applied
        # and a few slots more; then every other slot until it is final.
        timeout = self._execution_delay_s + 3 * self._slot_s + 0.5
        while True:
            # wait() leaves the future alone when time is up; wait_for() would need a
            # shield, one more future and callback for every order.
            await asyncio.wait((future,), timeout=timeout)
            if future.done():
                return future.result()
            found = await self.lookup(tx)
            if found is not None and found.final:
                return found
            timeout = max(2 * self._slot_s, 0.2)

    async def find(self, signature: str) -> TxOutcome | None:
        """What the chain knows of `signature`, if anything."""
        return (await self._ledger.outcomes([signature])).get(signature)

    async def lookup(self, tx: Transaction) -> TxOutcome | None:
        """Ask the chain about `tx` by its signature. One it never saw is EXPIRED once its
        slot is too old to land; until then it might still arrive, and this is None."""
        found = await self.find(tx.signature)
        if found is not None:
            return found
        if await self._ledger.head() > tx.built_slot + self.expiry_slots:
            return self._expired(tx)
        return None
