"""Orders and their events in SQL: every status change is committed with its event and
then published, and changes made together are applied together."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import asyncpg
import attrs
import orjson
from asyncpg.pool import PoolConnectionProxy
from cattrs.strategies import configure_tagged_union

from order_engine.batch import Batcher
from order_engine.domain.errors import (
    ClientOrderIdInUse,
    DomainError,
    OrderNotFound,
    RateLimited,
    StatusConflict,
)
from order_engine.domain.events import Accepted, EventData, OrderEvent
from order_engine.domain.orders import (
    Changes,
    NewOrder,
    Order,
    OrderStatus,
    OrderType,
    RestingOrder,
    can_transition,
    sources_of,
)
from order_engine.domain.routes import Route
from order_engine.formats import exact_json
from order_engine.hub import Hub
from order_engine.routing.tokens import TOKENS

_ORDER_COLUMNS = """
    id, type, status, user_wallet, input_token, output_token, input_amount, slippage_bps,
    limit_price, expires_at, dex, quoted_amount_out, min_amount_out, amount_out,
    executed_price, tx_hash, attempts, failure_code, failure_reason, created_at, updated_at,
    route, tx_slot, client_order_id
"""

# Many orders and their first events in one statement, each with the id given.
_INSERT_ORDERS = """
WITH new AS (
    INSERT INTO orders (id, type, status, user_wallet, input_token, output_token,
                        input_amount, slippage_bps, limit_price, expires_at, queued_at, last_seq,
                        client_order_id)
    SELECT u.id, u.type, 'pending', u.wallet, u.input_token, u.output_token, u.input_amount,
           u.slippage_bps, u.limit_price, u.expires_at, CASE WHEN u.queued THEN now() END, 1,
           u.client_order_id
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[],
                $7::int[], $8::numeric[], $9::timestamptz[], $10::boolean[], $12::text[])
        AS u(id, type, wallet, input_token, output_token, input_amount, slippage_bps,
             limit_price, expires_at, queued, client_order_id)
    -- A clientOrderId the wallet has already (or twice in this batch) inserts nothing:
    -- its caller alone is refused, not the batch.
    ON CONFLICT (user_wallet, client_order_id) WHERE client_order_id IS NOT NULL DO NOTHING
    RETURNING *
), event AS (
    INSERT INTO order_events (order_id, seq, status, data, created_at)
    SELECT id, 1, status, $11::jsonb, created_at FROM new
)
SELECT id, created_at FROM new
"""

# Many transitions in one statement. Each row's WHERE re-checks its order's status under
# the row lock the UPDATE takes, and its events take the seqs the same UPDATE assigned, so
# a transition and its events commit together or not at all. A row with `via` statuses
# (comma-separated, their payloads a JSON array) passes through each on the way, with an
# event of its own. Only the orders that moved come back; the caller asks separately, and
# rarely, why the others did not.
_TRANSITIONS = """
WITH u AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::numeric[],
        $7::numeric[], $8::numeric[], $9::text[], $10::bigint[], $11::text[], $12::int[],
        $13::text[], $14::text[], $15::boolean[], $16::text[], $17::text[], $18::text[])
    AS u(id, status, sources, dex, quoted_amount_out, min_amount_out, amount_out,
         executed_price, tx_hash, tx_slot, route, attempts, failure_code, failure_reason,
         forget_tx, data, via_status, via_data)
), moved AS (
    UPDATE orders o SET
        status = u.status,
        last_seq = o.last_seq + 1 + coalesce(cardinality(string_to_array(u.via_status, ',')), 0),
        updated_at = now(),
        changed_xid = pg_current_xact_id(),
        dex = COALESCE(u.dex, o.dex),
        quoted_amount_out = COALESCE(u.quoted_amount_out, o.quoted_amount_out),
        min_amount_out = COALESCE(u.min_amount_out, o.min_amount_out),
        amount_out = COALESCE(u.amount_out, o.amount_out),
        executed_price = COALESCE(u.executed_price, o.executed_price),
        tx_hash = CASE WHEN u.forget_tx THEN NULL ELSE COALESCE(u.tx_hash, o.tx_hash) END,
        tx_slot = CASE WHEN u.forget_tx THEN NULL ELSE COALESCE(u.tx_slot, o.tx_slot) END,
        route = COALESCE(u.route::jsonb, o.route),
        attempts = COALESCE(u.attempts, o.attempts),
        failure_code = COALESCE(u.failure_code, o.failure_code),
        failure_reason = COALESCE(u.failure_reason, o.failure_reason)
    FROM u
    WHERE o.id = u.id AND o.status = ANY(string_to_array(u.sources, ','))
    RETURNING o.id, o.last_seq, o.status, o.updated_at, u.data, u.via_status, u.via_data
), events AS (
    INSERT INTO order_events (order_id, seq, status, data, created_at)
    SELECT m.id, m.last_seq - cardinality(v.statuses) + p.n - 1, v.statuses[p.n], p.data,
           m.updated_at
    FROM moved m
    CROSS JOIN LATERAL (SELECT string_to_array(m.via_status, ',') AS statuses) v
    CROSS JOIN LATERAL jsonb_array_elements(m.via_data::jsonb) WITH ORDINALITY AS p(data, n)
    WHERE m.via_status IS NOT NULL
    UNION ALL
    SELECT id, last_seq, status, data::jsonb, updated_at FROM moved
)
SELECT id, last_seq, updated_at FROM moved
"""
_STATUSES = "SELECT id, status FROM orders WHERE id = ANY($1::uuid[])"

_GET_ORDERS = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ANY($1::uuid[])"

# The resting orders' cap is counted under a per-wallet lock held to the commit, so that
# two submissions of one wallet cannot both take its last place. Two-key advisory locks
# of their own class, apart from the leaders' and the orders' (leader.py, engine/locks.py).
RESTING_LOCK_CLASS = 0x6F72
_LOCK_WALLETS = "SELECT pg_advisory_xact_lock($1::int, hashtext(w)) FROM unnest($2::text[]) AS w"
_COUNT_RESTING = """
SELECT user_wallet, count(*) AS resting FROM orders
WHERE type <> 'market' AND status IN ('pending', 'waiting') AND user_wallet = ANY($1::text[])
GROUP BY user_wallet
"""
RESTING_RETRY_AFTER_S = 5

# What the trigger index keeps of a resting order; a sniper's slot is in its waiting
# event, the order's last while it rests.
_RESTING_COLUMNS = """
o.id, o.type, o.status, o.input_token, o.output_token, o.input_amount, o.limit_price,
o.expires_at,
CASE WHEN o.type = 'sniper' THEN (
    SELECT (e.data ->> 'slot')::bigint FROM order_events e
    WHERE e.order_id = o.id AND e.seq = o.last_seq
) END AS rest_slot
"""
# Resting orders with the horizon of the statement's snapshot, in every row (and alone
# in one when no order matches): every transaction older than its xmin had ended, so
# what a later read must ask for is what transactions at or after it changed.
_WITH_HORIZON = """
SELECT h.horizon, r.* FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) AS h
LEFT JOIN ({}) AS r ON true
"""
_RESTING = _WITH_HORIZON.format(
    f"SELECT {_RESTING_COLUMNS} FROM orders o WHERE o.type <> 'market' AND o.status = 'waiting'"
)
_RESTING_CHANGES = _WITH_HORIZON.format(
    f"SELECT {_RESTING_COLUMNS} FROM orders o "
    "WHERE o.type <> 'market' AND o.changed_xid >= $1::xid8"
)

_GET_STATUS = "SELECT status FROM orders WHERE id = $1"

# Queued orders that are not terminal and have not moved for a while: the ones whose
# queue entry Redis may have lost. `waiting` orders rest outside the queue by design.
# Written as NOT IN so that the planner can use the partial index orders_active_idx.
_LIST_STALLED = """
SELECT id FROM orders
WHERE status NOT IN ('confirmed', 'failed', 'cancelled', 'expired', 'waiting')
  AND queued_at IS NOT NULL
  AND updated_at < now() - $1::interval
ORDER BY updated_at
LIMIT $2
"""

_LIST_EVENTS = """
SELECT e.order_id, o.user_wallet, e.seq, e.status, e.data, e.created_at, o.client_order_id
FROM order_events e JOIN orders o ON o.id = e.order_id
WHERE e.order_id = $1 AND e.seq > $2
ORDER BY e.seq
"""


def _wallet_orders_query(*, status: bool, after: bool, client: bool) -> str:
    """A page of a wallet's orders: $1 wallet, $2 limit, then status, then clientOrderId,
    then the keyset.

    Each shape is its own statement, so that each plans as one range of an index
    (orders_wallet_created_idx, or orders_wallet_status_created_idx with a status, or
    one row of orders_wallet_client_order_id_key with a clientOrderId).
    """
    conditions = ["user_wallet = $1"]
    arg = 3
    if status:
        conditions.append(f"status = ${arg}")
        arg += 1
    if client:
        conditions.append(f"client_order_id = ${arg}")
        arg += 1
    if after:
        conditions.append(f"(created_at, id) < (${arg}, ${arg + 1})")
    return f"""
SELECT {_ORDER_COLUMNS} FROM orders
WHERE {" AND ".join(conditions)}
ORDER BY created_at DESC, id DESC
LIMIT $2
"""


WALLET_ORDER_QUERIES = {
    (status, after, client): _wallet_orders_query(status=status, after=after, client=client)
    for status in (False, True)
    for after in (False, True)
    for client in (False, True)
}

_CLIENT_ORDER_IDS = """
SELECT o.user_wallet, o.client_order_id, o.id
FROM orders o JOIN unnest($1::text[], $2::text[]) AS u(wallet, client_order_id)
  ON o.user_wallet = u.wallet AND o.client_order_id = u.client_order_id
"""


# Marks a created (pending, never queued) order as queued; of concurrent callers exactly
# one matches, because the UPDATE re-checks queued_at under the row lock.
_MARK_QUEUED = f"""
UPDATE orders SET queued_at = now(), updated_at = now()
WHERE id = $1 AND status = 'pending' AND queued_at IS NULL
RETURNING {_ORDER_COLUMNS}
"""


@attrs.frozen
class WalletCursor:
    """Where the previous page of a wallet's orders ended: its last (created_at, id)."""

    created_at: datetime
    order_id: uuid.UUID


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode jsonb into Python objects on every pooled connection."""
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release. No pooled connection holds session state (advisory
    locks live on connections of their own), so asyncpg's reset query, a round trip
    after every statement, has nothing to undo; an open transaction is still rolled back
    by the pool itself."""


# A connection keeps each prepared statement, and PostgreSQL the generic plan made at its
# sixth run: made on a new database's nearly empty tables, a plan that scans them whole.
# Every statement here is written for an index, so scans are off from the first run on;
# JIT would compile any statement the planner thinks large, for longer than it runs.
_SESSION_SETTINGS = {"enable_seqscan": "off", "jit": "off"}


async def create_pool(
    dsn: str, *, min_size: int, max_size: int, command_timeout: float
) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        server_settings=_SESSION_SETTINGS,
        init=init_connection,
        reset=keep_session,
    )


# Event payloads as the store keeps them: each tagged with its kind.
_events = exact_json.copy()
configure_tagged_union(
    EventData,
    _events,
    tag_name="kind",
    tag_generator=lambda cls: cls.__name__.lower(),
)


def _json(value: object) -> str:
    """JSON text for an array parameter, where a list would be read as a dimension."""
    return orjson.dumps(value).decode()


def store_data(data: EventData) -> object:
    return _events.unstructure(data, unstructure_as=EventData)


def _order(row: asyncpg.Record) -> Order:
    return Order(
        id=row["id"],
        type=OrderType(row["type"]),
        status=OrderStatus(row["status"]),
        user_wallet=row["user_wallet"],
        input_token=row["input_token"],
        output_token=row["output_token"],
        input_amount=row["input_amount"],
        slippage_bps=row["slippage_bps"],
        limit_price=row["limit_price"],
        expires_at=row["expires_at"],
        dex=row["dex"],
        quoted_amount_out=row["quoted_amount_out"],
        min_amount_out=row["min_amount_out"],
        amount_out=row["amount_out"],
        executed_price=row["executed_price"],
        tx_hash=row["tx_hash"],
        attempts=row["attempts"],
        failure_code=row["failure_code"],
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        route=None if row["route"] is None else exact_json.structure(row["route"], Route),
        tx_slot=row["tx_slot"],
        client_order_id=row["client_order_id"],
    )


def _resting(row: asyncpg.Record) -> RestingOrder:
    # Token symbols from TOKENS rather than from the row, so that a hundred thousand
    # orders share a handful of strings.
    return RestingOrder(
        id=row["id"],
        type=OrderType(row["type"]),
        input_token=TOKENS[row["input_token"]].symbol,
        output_token=TOKENS[row["output_token"]].symbol,
        input_amount=row["input_amount"],
        limit_price=row["limit_price"],
        expires_at=row["expires_at"],
        rest_slot=row["rest_slot"] if row["rest_slot"] is not None else -1,
    )


def _event(row: asyncpg.Record) -> OrderEvent:
    return OrderEvent(
        order_id=row["order_id"],
        user_wallet=row["user_wallet"],
        seq=row["seq"],
        status=OrderStatus(row["status"]),
        timestamp=row["created_at"],
        data=_events.structure(row["data"], EventData),  # type: ignore[arg-type]
        client_order_id=row["client_order_id"],
    )


# Told of every committed change: the order after it, its event, and when the previous
# status began (None when the caller does not know).
Observer = Callable[[Order, OrderEvent, datetime | None], None]


@attrs.frozen
class _Insert:
    order_id: uuid.UUID
    new: NewOrder
    queued: bool


@attrs.frozen
class _Write:
    order: Order
    status: OrderStatus
    sources: frozenset[OrderStatus]
    changes: Changes
    data: EventData
    since: datetime | None
    via: tuple[tuple[OrderStatus, EventData], ...] = ()

    @property
    def entered(self) -> OrderStatus:
        """The first status the write moves the order into."""
        return self.via[0][0] if self.via else self.status


Change = tuple[Order, OrderEvent]
Connection = asyncpg.Connection | PoolConnectionProxy


class OrderStore:
    """Orders and their events. Every change is committed with its event and then, only
    then, told to the observers and published on the hub (when given).

    Inserts, transitions and reads made in the same turn of the event loop are applied
    by one statement each (batch.py); every caller gets its own result, conflict
    or error.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        hub: Hub | None = None,
        observer: Observer | None = None,
        acquire_timeout: float = 5.0,
        max_resting_per_wallet: int = 0,
    ) -> None:
        """`max_resting_per_wallet`: how many limit and sniper orders a wallet may have
        pending or waiting at once (0: no limit)."""
        self._pool = pool
        self._hub = hub
        self._observers = [observer] if observer is not None else []
        self._acquire_timeout = acquire_timeout
        self._max_resting = max_resting_per_wallet
        self._inserts: Batcher[_Insert, Change] = Batcher(self._insert_batch)
        self._writes: Batcher[_Write, Change] = Batcher(self._write_batch, key=lambda w: w.order.id)
        self._reads: Batcher[uuid.UUID, Order | None] = Batcher(self._read_batch)

    def _committed(self, changes: Sequence[tuple[Change, datetime | None]]) -> None:
        for observer in self._observers:
            for (order, event), since in changes:
                observer(order, event, since)
        if self._hub is not None:
            self._hub.publish([event for (_, event), _ in changes])

    def add_observer(self, observer: Observer) -> None:
        """Tell `observer` of every change committed from now on, after those before it."""
        self._observers.append(observer)

    async def insert_order(self, new: NewOrder, *, queued: bool) -> Change:
        """Persist a pending order and its first event; `queued` marks it for execution.

        Raises ClientOrderIdInUse when the wallet has an order of that clientOrderId.
        """
        return await self._inserts(_Insert(uuid.uuid4(), new, queued))

    async def insert_orders(
        self, orders: Sequence[tuple[NewOrder, bool]]
    ) -> list[Change | DomainError]:
        """`insert_order` for orders (each with its `queued`) that the caller batched
        itself: one statement for all, and one result or error each, in their order."""
        return await self._insert_batch(
            [_Insert(uuid.uuid4(), new, queued) for new, queued in orders]
        )

    async def _insert_batch(self, batch: list[_Insert]) -> list[Change | DomainError]:
        refused: dict[uuid.UUID, DomainError] = {}
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            if self._max_resting and any(i.new.type.rests for i in batch):
                async with conn.transaction():
                    refused = await self._over_resting_cap(conn, batch)
                    rows = await self._insert_rows(
                        conn, [i for i in batch if i.order_id not in refused]
                    )
            else:
                rows = await self._insert_rows(conn, batch)
            created = {row["id"]: row["created_at"] for row in rows}
            orders = {
                i.order_id: i.new.placed(i.order_id, created[i.order_id])
                for i in batch
                if i.order_id in created
            }
            taken = [i for i in batch if i.order_id not in orders and i.order_id not in refused]
            holders = {}
            if taken:
                # Only a clientOrderId taken already (ON CONFLICT … DO NOTHING) leaves an
                # order out: name the order that holds it.
                found = await conn.fetch(
                    _CLIENT_ORDER_IDS,
                    [i.new.user_wallet for i in taken],
                    [i.new.client_order_id for i in taken],
                )
                holders = {(r["user_wallet"], r["client_order_id"]): r["id"] for r in found}
        results: list[Change | DomainError] = []
        changes = []
        for item in batch:
            if item.order_id in refused:
                results.append(refused[item.order_id])
                continue
            if item.order_id not in orders:
                name = item.new.client_order_id
                assert name is not None
                results.append(ClientOrderIdInUse(name, holders[item.new.user_wallet, name]))
                continue
            order = orders[item.order_id]
            event = self._event(order, 1, OrderStatus.PENDING, Accepted())
            changes.append((order, event))
            results.append((order, event))
        self._committed([(change, None) for change in changes])
        return results

    async def _insert_rows(self, conn: Connection, batch: list[_Insert]) -> list[asyncpg.Record]:
        if not batch:
            return []
        rows: list[asyncpg.Record] = await conn.fetch(
            _INSERT_ORDERS,
            [i.order_id for i in batch],
            [i.new.type.value for i in batch],
            [i.new.user_wallet for i in batch],
            [i.new.input_token for i in batch],
            [i.new.output_token for i in batch],
            [i.new.input_amount for i in batch],
            [i.new.slippage_bps for i in batch],
            [i.new.limit_price for i in batch],
            [i.new.expires_at for i in batch],
            [i.queued for i in batch],
            store_data(Accepted()),
            [i.new.client_order_id for i in batch],
        )
        return rows

    async def _over_resting_cap(
        self, conn: Connection, batch: list[_Insert]
    ) -> dict[uuid.UUID, DomainError]:
        """The limit and sniper orders of `batch` that their wallet has no place left
        for, counted under the wallets' locks (held until the transaction ends)."""
        resting = [i for i in batch if i.new.type.rests]
        wallets = sorted({i.new.user_wallet for i in resting})
        # In one order, so that two batches locking the same wallets cannot deadlock.
        await conn.execute(_LOCK_WALLETS, RESTING_LOCK_CLASS, wallets)
        counts = {r["user_wallet"]: r["resting"] for r in await conn.fetch(_COUNT_RESTING, wallets)}
        refused: dict[uuid.UUID, DomainError] = {}
        for item in resting:
            wallet = item.new.user_wallet
            if counts.get(wallet, 0) >= self._max_resting:
                refused[item.order_id] = RateLimited(
                    f"wallet {wallet} has {self._max_resting} limit and sniper orders pending "
                    "or waiting already (MAX_RESTING_PER_WALLET): one must fire, expire or "
                    "be cancelled first",
                    RESTING_RETRY_AFTER_S,
                )
            else:
                counts[wallet] = counts.get(wallet, 0) + 1
        return refused

    async def _known(self, order: Order | uuid.UUID) -> Order:
        if isinstance(order, Order):
            return order
        found = await self.get_order(order)
        if found is None:
            raise OrderNotFound(order)
        return found

    async def transition(
        self,
        order: Order | uuid.UUID,
        new_status: OrderStatus,
        data: EventData,
        changes: Changes = Changes(),
        *,
        since: datetime | None = None,
        only_from: OrderStatus | None = None,
        via: tuple[tuple[OrderStatus, EventData], ...] = (),
    ) -> Change:
        """Move an order to `new_status` and append its event, or change nothing.

        Raises StatusConflict when the current status does not lead to `new_status` (or
        is not `only_from`, when given), OrderNotFound when there is no such order. Given
        the order as the caller has it, the order after the move is worked out rather than
        read back; given its id, it is read first. `since`: when the order's previous
        status began, for the step's duration. `via`: the statuses passed through on the
        way, each with its event, in the same commit (steps that wait for nothing between).
        """
        path = [status for status, _ in via] + [new_status]
        for before, after in itertools.pairwise(path):
            if not can_transition(before, after):
                raise ValueError(f"{before} does not lead to {after}")
        first = path[0]
        sources = sources_of(first)
        if only_from is not None:
            if only_from not in sources:
                raise ValueError(f"{only_from} does not lead to {first}")
            sources = frozenset({only_from})
        write = _Write(await self._known(order), new_status, sources, changes, data, since, via)
        return await self._writes(write)

    async def record(
        self,
        order: Order | uuid.UUID,
        status: OrderStatus,
        data: EventData,
        changes: Changes = Changes(),
    ) -> Change:
        """Append an event that keeps the order in `status` (a retry, a new quote), with
        its changes; StatusConflict if the order is no longer in `status`."""
        if status.is_terminal:
            raise ValueError(f"a {status} order takes no further events")
        write = _Write(await self._known(order), status, frozenset({status}), changes, data, None)
        return await self._writes(write)

    async def _write_batch(self, batch: list[_Write]) -> list[Change | DomainError]:
        # By order id: two batches that share orders (a firing of many resting orders and
        # a wallet's cancels, from two processes) then lock their rows in the same order,
        # and one waits for the other instead of deadlocking with it.
        ordered = sorted(batch, key=lambda w: w.order.id)

        def column(get: Callable[[Changes], object]) -> list[object]:
            return [get(w.changes) for w in ordered]

        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(
                _TRANSITIONS,
                [w.order.id for w in ordered],
                [w.status.value for w in ordered],
                [",".join(s.value for s in w.sources) for w in ordered],
                column(lambda c: c.dex),
                column(lambda c: c.quoted_amount_out),
                column(lambda c: c.min_amount_out),
                column(lambda c: c.amount_out),
                column(lambda c: c.executed_price),
                column(lambda c: c.tx_hash),
                column(lambda c: c.tx_slot),
                column(
                    lambda c: None if c.route is None else _json(exact_json.unstructure(c.route))
                ),
                column(lambda c: c.attempts),
                column(lambda c: c.failure_code),
                column(lambda c: c.failure_reason),
                column(lambda c: c.forget_tx),
                [_json(store_data(w.data)) for w in ordered],
                [",".join(s.value for s, _ in w.via) if w.via else None for w in ordered],
                [_json([store_data(d) for _, d in w.via]) if w.via else None for w in ordered],
            )
            moved = {row["id"]: row for row in rows}
            stuck = [w.order.id for w in batch if w.order.id not in moved]
            # A conflict is rare (a cancel racing a firing): it alone costs a second read.
            current = (
                {r["id"]: OrderStatus(r["status"]) for r in await conn.fetch(_STATUSES, stuck)}
                if stuck
                else {}
            )
        results: list[Change | DomainError] = []
        committed: list[tuple[Change, datetime | None]] = []
        for write in batch:
            row = moved.get(write.order.id)
            if row is None:
                status = current.get(write.order.id)
                results.append(
                    OrderNotFound(write.order.id)
                    if status is None
                    else StatusConflict(write.order.id, status, write.entered)
                )
                continue
            order = write.changes.applied_to(write.order, write.status, row["updated_at"])
            since = write.since
            for back, (status, data) in zip(range(len(write.via), 0, -1), write.via, strict=True):
                passed = self._event(order, row["last_seq"] - back, status, data)
                committed.append(((order, passed), since))
                since = order.updated_at
            event = self._event(order, row["last_seq"], write.status, write.data)
            results.append((order, event))
            committed.append(((order, event), since))
        self._committed(committed)
        return results

    @staticmethod
    def _event(order: Order, seq: int, status: OrderStatus, data: EventData) -> OrderEvent:
        """The event a committed change of `order` appended at `seq`."""
        return OrderEvent(
            order_id=order.id,
            user_wallet=order.user_wallet,
            seq=seq,
            status=status,
            timestamp=order.updated_at,
            data=data,
            client_order_id=order.client_order_id,
        )

    async def get_order(self, order_id: uuid.UUID) -> Order | None:
        return await self._reads(order_id)

    def read_soon(
        self, order_id: uuid.UUID, *, within_s: float = 0.0
    ) -> asyncio.Future[Order | None]:
        """`get_order`, joined to a read batch before the caller awaits it: this turn's,
        or one within the `within_s` the caller can spare."""
        return self._reads.submit(order_id, within_s=within_s)

    async def _read_batch(self, batch: list[uuid.UUID]) -> list[Order | None]:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_GET_ORDERS, batch)
        found = {row["id"]: _order(row) for row in rows}
        return [found.get(order_id) for order_id in batch]

    async def mark_queued(self, order_id: uuid.UUID) -> Order:
        """Claim a pending, never-queued order for execution.

        Raises StatusConflict when it is queued already or no longer pending, OrderNotFound
        when there is no such order.
        """
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            row = await conn.fetchrow(_MARK_QUEUED, order_id)
            if row is None:
                current = await conn.fetchval(_GET_STATUS, order_id)
                if current is None:
                    raise OrderNotFound(order_id)
                status = OrderStatus(current)
                detail = (
                    "is queued for execution already" if status == "pending" else f"is {status}"
                )
                raise StatusConflict(
                    order_id,
                    status,
                    OrderStatus.ROUTING,
                    f"order {order_id} {detail}; only a pending order that was never "
                    "executed can be executed",
                )
        return _order(row)

    async def list_events(self, order_id: uuid.UUID, *, after_seq: int = 0) -> list[OrderEvent]:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_LIST_EVENTS, order_id, after_seq)
        return [_event(r) for r in rows]

    async def list_wallet_orders(
        self,
        wallet: str,
        *,
        limit: int,
        after: WalletCursor | None = None,
        status: OrderStatus | None = None,
        client_order_id: str | None = None,
    ) -> list[Order]:
        """A wallet's orders, newest first, starting after `after`, only in `status` and
        of `client_order_id` if given."""
        args: list[object] = [wallet, limit]
        if status is not None:
            args.append(status.value)
        if client_order_id is not None:
            args.append(client_order_id)
        if after is not None:
            args.extend((after.created_at, after.order_id))
        query = WALLET_ORDER_QUERIES[
            status is not None, after is not None, client_order_id is not None
        ]
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(query, *args)
        return [_order(r) for r in rows]

    async def resting_orders(self) -> tuple[int, list[RestingOrder]]:
        """Every resting order, and the horizon to ask `resting_changes` from next."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_RESTING)
        return int(rows[0]["horizon"]), [_resting(r) for r in rows if r["id"] is not None]

    async def resting_changes(
        self, horizon: int
    ) -> tuple[int, list[RestingOrder], list[uuid.UUID]]:
        """The limit and sniper orders changed by transactions at or after `horizon` (the
        ones a read at `horizon` may not have seen): the horizon to ask from next, those
        resting, and the ids of those that no longer rest. Pending orders are in neither
        list."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_RESTING_CHANGES, horizon)
        resting = [_resting(r) for r in rows if r["status"] == OrderStatus.WAITING]
        gone = [
            r["id"]
            for r in rows
            if r["id"] is not None and r["status"] not in (OrderStatus.PENDING, OrderStatus.WAITING)
        ]
        return int(rows[0]["horizon"]), resting, gone

    async def list_stalled(self, *, idle_for: timedelta, limit: int) -> list[uuid.UUID]:
        """Queued, non-terminal orders unchanged for `idle_for`, longest idle first."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            rows = await conn.fetch(_LIST_STALLED, idle_for, limit)
        return [r["id"] for r in rows]

    async def ping(self) -> None:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            await conn.fetchval("SELECT 1")
