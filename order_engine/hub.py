"""Publish/subscribe of status events, per order and per wallet, relayed between processes.

Events are delivered to local subscribers at once and published on a Redis channel; each
process's relay delivers what other processes published. A subscriber whose buffer is
full is dropped, never waited for: Postgres keeps every event, so it can catch up by
replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Hashable, Iterator
from datetime import datetime
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from order_engine.domain.orders import OrderEvent, OrderStatus

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class SubscriberDropped(Exception):
    """The subscriber fell too far behind and no longer receives events."""


class Subscription:
    def __init__(self, buffer_size: int) -> None:
        self._events: asyncio.Queue[OrderEvent] = asyncio.Queue(maxsize=buffer_size)
        self._dropped = False

    @property
    def dropped(self) -> bool:
        return self._dropped

    def deliver(self, event: OrderEvent) -> bool:
        """Buffer `event`; False (and the subscription is dropped) when the buffer is full."""
        if self.dropped:
            return False
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped = True
            return False
        return True

    async def get(self) -> OrderEvent:
        """The next event; raises SubscriberDropped once the subscriber has overflowed.

        A subscriber is only dropped while its buffer is full, so it is never blocked
        here, on an empty buffer, when that happens.
        """
        if self.dropped:
            raise SubscriberDropped
        return await self._events.get()


def encode_event(event: OrderEvent, origin: str) -> str:
    return json.dumps(
        {
            "origin": origin,
            "orderId": str(event.order_id),
            "wallet": event.user_wallet,
            "seq": event.seq,
            "status": event.status.value,
            "timestamp": event.timestamp.isoformat(),
            "data": event.data,
            "clientOrderId": event.client_order_id,
        }
    )


def decode_event(payload: str | bytes) -> tuple[str, OrderEvent]:
    raw = json.loads(payload)
    event = OrderEvent(
        order_id=uuid.UUID(raw["orderId"]),
        user_wallet=raw["wallet"],
        seq=raw["seq"],
        status=OrderStatus(raw["status"]),
        timestamp=datetime.fromisoformat(raw["timestamp"]),
        data=raw["data"],
        client_order_id=raw.get("clientOrderId"),
    )
    return raw["origin"], event


class Hub:
    def __init__(self, redis: aioredis.Redis, channel: str, *, buffer_size: int) -> None:
        self._redis = redis
        self._channel = channel
        self._buffer_size = buffer_size
        self._origin = uuid.uuid4().hex
        self._by_order: dict[uuid.UUID, set[Subscription]] = {}
        self._by_wallet: dict[str, set[Subscription]] = {}
        self._relay_task: asyncio.Task[None] | None = None
        self._relay_ready = asyncio.Event()

    @contextlib.contextmanager
    def subscribe_order(self, order_id: uuid.UUID) -> Iterator[Subscription]:
        with self._subscribe(self._by_order, order_id) as sub:
            yield sub

    @contextlib.contextmanager
    def subscribe_wallet(self, wallet: str) -> Iterator[Subscription]:
        with self._subscribe(self._by_wallet, wallet) as sub:
            yield sub

    @contextlib.contextmanager
    def _subscribe(self, index: dict[K, set[Subscription]], key: K) -> Iterator[Subscription]:
        sub = Subscription(self._buffer_size)
        index.setdefault(key, set()).add(sub)
        try:
            yield sub
        finally:
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_order.values()) + sum(
            len(s) for s in self._by_wallet.values()
        )

    def deliver_local(self, event: OrderEvent) -> None:
        targets = self._by_order.get(event.order_id, set()) | self._by_wallet.get(
            event.user_wallet, set()
        )
        for sub in targets:
            if not sub.deliver(event):
                log.warning("dropped a slow subscriber of order %s", event.order_id)

    async def publish(self, event: OrderEvent) -> None:
        """Deliver here, then relay to other processes; a Redis outage costs only the relay."""
        self.deliver_local(event)
        try:
            await self._redis.publish(self._channel, encode_event(event, self._origin))
        except (RedisError, OSError) as exc:
            log.warning("could not relay event %s#%s: %s", event.order_id, event.seq, exc)

    async def start(self) -> None:
        self._relay_task = asyncio.create_task(self._relay(), name="hub-relay")
        await self._relay_ready.wait()

    async def stop(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task

    async def _relay(self) -> None:
        """Deliver events published by other processes, resubscribing after Redis blips."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._relay_ready.set()
                async for message in pubsub.listen():
                    origin, event = decode_event(message["data"])
                    if origin != self._origin:
                        self.deliver_local(event)
            except (RedisError, OSError) as exc:
                log.warning("hub relay lost Redis (%s); resubscribing", exc)
                self._relay_ready.set()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
