"""Publish/subscribe of status events, per order and per wallet, relayed between processes.

Each event is encoded once, into the message every socket sends, and delivered to local
subscribers at once; a batch of events then goes to the other processes as one Redis
message, and each process's relay delivers what the others published. A subscriber
whose buffer is full is dropped, never waited for: Postgres keeps every event, so it can
catch up by replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

import attrs
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from order_engine.domain.events import OrderEvent

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@attrs.frozen
class Delivery:
    """An event as subscribers get it: enough to order it, and its message, encoded."""

    order_id: uuid.UUID
    wallet: str
    seq: int
    terminal: bool
    text: str


class SubscriberDropped(Exception):
    """The subscriber fell too far behind and no longer receives events."""


class Subscription:
    def __init__(self, buffer_size: int) -> None:
        self._events: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=buffer_size)
        self._dropped = False

    @property
    def dropped(self) -> bool:
        return self._dropped

    def deliver(self, event: Delivery) -> bool:
        """Buffer `event`; False (and the subscription is dropped) when the buffer is full."""
        if self.dropped:
            return False
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped = True
            return False
        return True

    async def get(self) -> Delivery:
        """The next event; raises SubscriberDropped once the subscriber has overflowed.

        A subscriber is only dropped while its buffer is full, so it is never blocked
        here, on an empty buffer, when that happens.
        """
        if self.dropped:
            raise SubscriberDropped
        return await self._events.get()


def encode_relay(origin: str, deliveries: Iterable[Delivery]) -> str:
    """One line for the origin, then one per event: wallet, order, seq, terminal, message.
    Messages are compact JSON, whose strings escape every newline and tab."""
    lines = [origin]
    lines += [f"{d.wallet}\t{d.order_id}\t{d.seq}\t{int(d.terminal)}\t{d.text}" for d in deliveries]
    return "\n".join(lines)


def relay_origin(payload: str | bytes) -> str:
    """The process that published a relayed batch, read without decoding the rest."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    return text.partition("\n")[0]


def decode_relay(payload: str | bytes) -> tuple[str, list[Delivery]]:
    text = payload.decode() if isinstance(payload, bytes) else payload
    origin, *lines = text.split("\n")
    deliveries = []
    for line in lines:
        wallet, order_id, seq, terminal, message = line.split("\t", 4)
        deliveries.append(Delivery(uuid.UUID(order_id), wallet, int(seq), terminal == "1", message))
    return origin, deliveries


class Hub:
    def __init__(
        self,
        redis: aioredis.Redis,
        channel: str,
        *,
        buffer_size: int,
        encode: Callable[[OrderEvent], str],
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._buffer_size = buffer_size
        self._encode = encode
        self._origin = uuid.uuid4().hex
        self._by_order: dict[uuid.UUID, set[Subscription]] = {}
        self._by_wallet: dict[str, set[Subscription]] = {}
        self._relay_task: asyncio.Task[None] | None = None
        self._relay_ready = asyncio.Event()

    @staticmethod
    def delivery_of(event: OrderEvent, encode: Callable[[OrderEvent], str]) -> Delivery:
        return Delivery(
            event.order_id, event.user_wallet, event.seq, event.status.is_terminal, encode(event)
        )

    def delivery(self, event: OrderEvent) -> Delivery:
        """The event as subscribers get it, encoded once."""
        return self.delivery_of(event, self._encode)

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

    def deliver_local(self, delivery: Delivery) -> None:
        by_order = self._by_order.get(delivery.order_id)
        by_wallet = self._by_wallet.get(delivery.wallet)
        if not (by_order or by_wallet):
            return
        for sub in (by_order or set()) | (by_wallet or set()):
            if not sub.deliver(delivery):
                log.warning("dropped a slow subscriber of order %s", delivery.order_id)

    async def publish(self, events: Sequence[OrderEvent]) -> None:
        """Deliver here, then relay to the other processes in one message; a Redis outage
        costs only the relay."""
        deliveries = [self.delivery(e) for e in events]
        for delivery in deliveries:
            self.deliver_local(delivery)
        if not deliveries:
            return
        try:
            await self._redis.publish(self._channel, encode_relay(self._origin, deliveries))
        except (RedisError, OSError) as exc:
            log.warning("could not relay %d events: %s", len(deliveries), exc)

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
                    # Every process hears its own batches too: they were delivered here
                    # before they were published.
                    if relay_origin(message["data"]) == self._origin:
                        continue
                    _, deliveries = decode_relay(message["data"])
                    for delivery in deliveries:
                        self.deliver_local(delivery)
            except (RedisError, OSError) as exc:
                log.warning("hub relay lost Redis (%s); resubscribing", exc)
                self._relay_ready.set()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
