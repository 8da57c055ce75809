"""The durable work queue: a Redis Stream read through one consumer group.

Delivery is at least once: an entry stays pending in the group until `ack`, which the
worker calls only once the order is terminal.
"""

from __future__ import annotations

import uuid
from typing import cast

import attrs
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

GROUP = "workers"


@attrs.frozen
class Entry:
    entry_id: str
    order_id: uuid.UUID | None
    """None when the entry's payload is not an order id: it is acked and skipped."""


def _entry(entry_id: str, fields: dict[str, str]) -> Entry:
    try:
        order_id: uuid.UUID | None = uuid.UUID(fields["order_id"])
    except (KeyError, ValueError):
        order_id = None
    return Entry(entry_id, order_id)


class OrderQueue:
    """`redis` serves short commands; `reader` is a connection of the read loop's own,
    because a blocked XREADGROUP holds its connection for the whole block."""

    def __init__(
        self, redis: aioredis.Redis, reader: aioredis.Redis, *, stream: str, consumer: str
    ) -> None:
        self._redis = redis
        self._reader = reader
        self.stream = stream
        self.consumer = consumer

    async def ensure_group(self) -> None:
        try:
            # From id 0, so that entries added before the group existed are read too.
            await self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, order_id: uuid.UUID) -> str:
        entry_id = await self._redis.xadd(self.stream, {"order_id": str(order_id)})
        return str(entry_id)

    async def read(self, count: int, *, block_ms: int) -> list[Entry]:
        """Up to `count` new entries, waiting at most `block_ms` for the first."""
        try:
            reply = await self._reader.xreadgroup(
                GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            # Redis lost the group (restarted empty, or flushed): make it again; what the
            # group held is rebuilt from Postgres, not from here.
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        streams = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], reply)
        return [_entry(entry_id, fields) for _, entries in streams for entry_id, fields in entries]

    async def ack(self, entry_id: str) -> None:
        """Acknowledge and delete: a finished entry has nothing left to tell anyone."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

    async def depth(self) -> int:
        """Entries not yet acknowledged: waiting to be read or being worked on."""
        return int(await self._redis.xlen(self.stream))
