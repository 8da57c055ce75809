"""The durable work queue: a Redis Stream read through one consumer group, a schedule of
retries, and a dead-letter stream.

Delivery is at least once: an entry stays pending in the group until the worker is done
with it (the order is terminal, or it was handed to the retry schedule or the dead
letters). Every hand-over is one MULTI, so an entry is always in exactly one place; the
hand-overs, acknowledgements and new entries of one turn of the loop share it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import attrs
import orjson
import redis.asyncio as aioredis
from cattrs.errors import BaseValidationError
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from order_engine.batch import Batcher
from order_engine.domain.routes import RouteAsk
from order_engine.formats import exact_json

GROUP = "workers"

# Atomic, so that two processes moving due retries at once never queue one twice, and a
# crash between the two commands cannot drop one.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, order_id in ipairs(due) do
    redis.call('ZREM', KEYS[1], order_id)
    redis.call('XADD', KEYS[2], '*', 'order_id', order_id)
end
return #due
"""


@attrs.frozen
class Entry:
    entry_id: str
    order_id: uuid.UUID | None
    """None when the entry's payload is not an order id: it is acked and skipped."""
    deliveries: int = 1
    ask: RouteAsk | None = None
    """What the order asks the router, when the entry carries it (a new market order):
    only a head start, the order as stored decides."""


def _order_id(fields: dict[str, str] | None) -> uuid.UUID | None:
    try:
        return uuid.UUID((fields or {})["order_id"])
    except (KeyError, ValueError):
        return None


def _ask(fields: dict[str, str] | None) -> RouteAsk | None:
    raw = (fields or {}).get("ask")
    if raw is None:
        return None
    try:
        return exact_json.structure(orjson.loads(raw), RouteAsk)
    except (ValueError, TypeError, BaseValidationError):
        # Only a head start: an entry whose ask cannot be read still runs its order.
        return None


def _fields(order_id: uuid.UUID, ask: RouteAsk | None) -> dict[FieldT, EncodableT]:
    fields: dict[FieldT, EncodableT] = {"order_id": str(order_id)}
    if ask is not None:
        fields["ask"] = orjson.dumps(exact_json.unstructure(ask))
    return fields


def _entry(entry_id: str, fields: dict[str, str] | None, deliveries: int = 1) -> Entry:
    return Entry(entry_id, _order_id(fields), deliveries, _ask(fields))


class OrderQueue:
    """`redis` serves short commands; `reader` is a connection of the read loop's own,
    because a blocked XREADGROUP holds its connection for the whole block."""

    def __init__(
        self, redis: aioredis.Redis, reader: aioredis.Redis, *, stream: str, consumer: str
    ) -> None:
        self._redis = redis
        self._reader = reader
        self.stream = stream
        self.retries = f"{stream}:retry"
        self.dead_letters = f"{stream}:dead"
        self.consumer = consumer
        self._reclaim_cursor = "0-0"
        self._move_due = redis.register_script(_MOVE_DUE)
        # Commands issued in one turn of the loop go to Redis in one round trip.
        self._adds: Batcher[tuple[uuid.UUID, RouteAsk | None], str] = Batcher(self._add_batch)
        self._acks: Batcher[str, None] = Batcher(self._ack_batch)
        self._retries: Batcher[tuple[str, uuid.UUID, int], None] = Batcher(self._retry_batch)

    async def ensure_group(self) -> None:
        try:
            # From id 0, so that entries added before the group existed are read too.
            await self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, order_id: uuid.UUID, ask: RouteAsk | None = None) -> str:
        """`ask`: what the order will ask the router, carried so that the worker can
        start quoting while it locks and reads the order."""
        return await self._adds((order_id, ask))

    async def enqueue_many(self, orders: Sequence[tuple[uuid.UUID, RouteAsk | None]]) -> list[str]:
        """`enqueue` for orders that the caller batched itself, in one round trip."""
        return await self._add_batch(orders)

    async def _add_batch(self, adds: Sequence[tuple[uuid.UUID, RouteAsk | None]]) -> list[str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for order_id, ask in adds:
                pipe.xadd(self.stream, _fields(order_id, ask))
            entry_ids: list[str] = await pipe.execute()
        return [str(e) for e in entry_ids]

    async def read(self, count: int, *, block_ms: int) -> list[Entry]:
        """Up to `count` new entries, waiting at most `block_ms` for the first."""
        reply = await self._read_group(">", count, block_ms)
        return [_entry(entry_id, fields) for entry_id, fields in reply]

    async def read_own_pending(self, count: int, *, after: str = "0") -> list[Entry]:
        """Entries this consumer was given before and never finished, after id `after`:
        a process that restarts under the same WORKER_ID takes its own work back at once."""
        reply = await self._read_group(after, count, None)
        return await self._with_deliveries(reply)

    async def _read_group(
        self, start: str, count: int, block_ms: int | None
    ) -> list[tuple[str, dict[str, str] | None]]:
        try:
            reply = await self._reader.xreadgroup(
                GROUP, self.consumer, {self.stream: start}, count=count, block=block_ms
            )
        except ResponseError as exc:
            # Redis lost the group (restarted empty, or flushed): make it again; what the
            # group held is rebuilt from Postgres by the reconciler, not from here.
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        streams = cast(list[tuple[str, list[tuple[str, dict[str, str] | None]]]], reply)
        return [entry for _, entries in streams for entry in entries]

    async def reclaim(self, *, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over up to `count` entries that other consumers (or this one, before a
        restart) left idle for `min_idle_ms`; each such claim counts as a delivery."""
        try:
            reply = await self._redis.xautoclaim(
                self.stream,
                GROUP,
                self.consumer,
                min_idle_ms,
                start_id=self._reclaim_cursor,
                count=count,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        cursor, claimed = reply[0], reply[1]
        self._reclaim_cursor = str(cursor)
        # Entries deleted from the stream while pending come back as bare ids (Redis 7):
        # nothing is left to run, so they are only acknowledged.
        if len(reply) > 2 and reply[2]:
            await self._redis.xack(self.stream, GROUP, *reply[2])
        return await self._with_deliveries(claimed)

    async def _with_deliveries(
        self, entries: Sequence[tuple[str, dict[str, str] | None]]
    ) -> list[Entry]:
        if not entries:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id, _ in entries:
                pipe.xpending_range(self.stream, GROUP, min=entry_id, max=entry_id, count=1)
            pending: list[list[dict[str, Any]]] = await pipe.execute()
        return [
            _entry(entry_id, fields, int(info[0]["times_delivered"]) if info else 1)
            for (entry_id, fields), info in zip(entries, pending, strict=True)
        ]

    async def renew(self, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of entries still being worked on, so that no other
        consumer reclaims them however long a step takes (JUSTID: no delivery counted)."""
        if entry_ids:
            await self._redis.xclaim(
                self.stream, GROUP, self.consumer, 0, list(entry_ids), justid=True
            )

    async def ack(self, entry_id: str) -> None:
        """Acknowledge and delete: a finished entry has nothing left to tell anyone."""
        await self._acks(entry_id)

    async def _ack_batch(self, entry_ids: list[str]) -> list[None]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, *entry_ids)
            pipe.xdel(self.stream, *entry_ids)
            await pipe.execute()
        return [None] * len(entry_ids)

    async def schedule_retry(self, entry_id: str, order_id: uuid.UUID, due_ms: int) -> None:
        """Hand the order to the retry schedule and finish its entry, in one step."""
        await self._retries((entry_id, order_id, due_ms))

    async def _retry_batch(self, retries: list[tuple[str, uuid.UUID, int]]) -> list[None]:
        entry_ids = [entry_id for entry_id, _, _ in retries]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.retries, {str(order_id): due_ms for _, order_id, due_ms in retries})
            pipe.xack(self.stream, GROUP, *entry_ids)
            pipe.xdel(self.stream, *entry_ids)
            await pipe.execute()
        return [None] * len(retries)

    async def move_due_retries(self, now_ms: int, *, limit: int = 500) -> int:
        """Queue every scheduled retry that is due; returns how many were moved."""
        return int(await self._move_due(keys=[self.retries, self.stream], args=[now_ms, limit]))

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Move an entry that keeps coming back to the dead letters, in one step."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.dead_letters,
                {
                    "order_id": str(entry.order_id),
                    "entry_id": entry.entry_id,
                    "deliveries": entry.deliveries,
                    "reason": reason,
                    "consumer": self.consumer,
                },
            )
            pipe.xack(self.stream, GROUP, entry.entry_id)
            pipe.xdel(self.stream, entry.entry_id)
            await pipe.execute()

    async def live_order_ids(self) -> set[uuid.UUID]:
        """Orders that Redis holds work for: queued, being worked on, or scheduled to
        retry. One MULTI, so that an order moving between the two is seen once."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrange(self.retries, 0, -1)
            pipe.xrange(self.stream)
            scheduled, queued = await pipe.execute()
        ids = {_order_id({"order_id": member}) for member in scheduled}
        ids |= {_order_id(fields) for _, fields in queued}
        ids.discard(None)
        return cast(set[uuid.UUID], ids)

    async def depth(self) -> int:
        """Entries not yet acknowledged: waiting to be read or being worked on."""
        return int(await self._redis.xlen(self.stream))

    async def retries_scheduled(self) -> int:
        return int(await self._redis.zcard(self.retries))
