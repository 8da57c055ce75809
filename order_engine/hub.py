"""Publish/subscribe of status events, per order and per wallet, relayed between processes.

Each event is encoded once, into the message every socket sends, and delivered to local
subscribers at once; a batch of events then goes to the other processes as one Redis
message, and each process's relay delivers what the others published. Relaying is not
waited for: one sender publishes, in order, all that gathered while its last message was
on its way (a stalled Redis holds it for the client's socket timeout at most), and the
store answers its writers meanwhile. A subscriber whose buffer is full is dropped, never
waited for: Postgres keeps every event, so it can catch up by replay.

A process that finds itself the channel's only listener stops relaying: its batches
would come back to itself alone. A process that starts says hello on the channel and
waits until every listener has answered; a listener turns relaying on before it
answers, so no socket of the new process can miss an event published elsewhere after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import attrs
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from order_engine.domain.events import OrderEvent

log = logging.getLogger(__name__)


@attrs.frozen
class Delivery:
    """An event as subscribers get it: enough to order it, and its message, encoded."""

    order_id: uuid.UUID
    wallet: str
    seq: int
    terminal: bool
    text: str


Notify = Callable[[], None]
# Subscribers by order id or wallet: most keys have one, kept without a set around it
# (a set costs 200 bytes, per idle socket).
Index = dict[Any, "Subscription | set[Subscription]"]


def _members(entry: Subscription | set[Subscription] | None) -> Iterable[Subscription]:
    if entry is None:
        return ()
    return (entry,) if isinstance(entry, Subscription) else entry


class Subscription:
    """One subscriber's bounded buffer of events, registered with the hub until it leaves
    (`with hub.subscribe_order(...) as sub:`) or overflows.

    The publisher calls `notify` when an event lands in an empty buffer, and `on_drop`
    once, when the buffer overflows: the subscriber is then out of the hub and gets
    nothing more. The subscriber takes what is buffered with `take()`. No task, queue or
    future is held while nothing happens, so that an idle subscriber costs little.
    """

    __slots__ = ("_events", "_index", "_key", "_limit", "_notify", "_on_drop", "dropped")

    def __init__(
        self,
        buffer_size: int,
        *,
        notify: Notify | None = None,
        on_drop: Notify | None = None,
    ) -> None:
        self._events: list[Delivery] | None = None
        self._limit = buffer_size
        self._notify = notify
        self._on_drop = on_drop
        self._index: Index | None = None
        self._key: Hashable = None
        self.dropped = False

    def deliver(self, event: Delivery) -> bool:
        """Buffer `event`; False (and the subscription is dropped) when the buffer is full."""
        if self.dropped:
            return False
        if self._events is None:
            self._events = [event]
            if self._notify is not None:
                self._notify()
            return True
        if len(self._events) >= self._limit:
            self.dropped = True
            self._events = None
            self.leave()
            if self._on_drop is not None:
                self._on_drop()
            return False
        self._events.append(event)
        return True

    def take(self) -> list[Delivery]:
        """Every buffered event, oldest first, leaving the buffer empty."""
        events, self._events = self._events or [], None
        return events

    def join(self, index: Index, key: Hashable) -> None:
        present = index.get(key)
        if present is None:
            index[key] = self
        elif isinstance(present, Subscription):
            index[key] = {present, self}
        else:
            present.add(self)
        self._index, self._key = index, key

    def leave(self) -> None:
        index, self._index = self._index, None
        if index is None:
            return
        present = index.get(self._key)
        if present is self:
            del index[self._key]
        elif isinstance(present, set):
            present.discard(self)
            if not present:
                del index[self._key]

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.leave()


# Control messages on the relay channel start with "!", which no origin (hex) does.
_HELLO = "!hello"
_ACK = "!ack"
# How often a process asks Redis whether anybody else listens, and how long a starting
# process waits for the others to answer its hello.
PEER_CHECK_S = 2.0
GREETING_TIMEOUT_S = 2.0
SEND_ON_STOP_S = 2.0


def encode_relay(origin: str, deliveries: Iterable[Delivery]) -> str:
    """One line for the origin, then one per event: wallet, order, seq, terminal, message.
    Messages are compact JSON, whose strings escape every newline and tab."""
    lines = [origin]
    lines += [f"{d.wallet}\t{d.order_id}\t{d.seq}\t{int(d.terminal)}\t{d.text}" for d in deliveries]
    return "\n".join(lines)


def _text(payload: str | bytes) -> str:
    """A message of the relay channel as text, whether the client decodes replies or not."""
    return payload.decode() if isinstance(payload, bytes) else payload


def relay_origin(payload: str | bytes) -> str:
    """The process that published a relayed batch, read without decoding the rest."""
    return _text(payload).partition("\n")[0]


def decode_relay(payload: str | bytes) -> tuple[str, list[Delivery]]:
    origin, *lines = _text(payload).split("\n")
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
        self._by_order: Index = {}
        self._by_wallet: Index = {}
        self._relay_task: asyncio.Task[None] | None = None
        self._outbox: list[Delivery] = []
        self._sender: asyncio.Task[None] | None = None
        self._peers_task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._greeted = asyncio.Event()
        self._answers_wanted = 0
        # Until Redis says otherwise, somebody may listen.
        self._relaying = True
        self._listening = False
        self._hellos = 0

    @staticmethod
    def delivery_of(event: OrderEvent, encode: Callable[[OrderEvent], str]) -> Delivery:
        return Delivery(
            event.order_id, event.user_wallet, event.seq, event.status.is_terminal, encode(event)
        )

    def delivery(self, event: OrderEvent) -> Delivery:
        """The event as subscribers get it, encoded once."""
        return self.delivery_of(event, self._encode)

    def subscribe_order(
        self, order_id: uuid.UUID, *, notify: Notify | None = None, on_drop: Notify | None = None
    ) -> Subscription:
        """A subscription to the order's events, registered at once; leave it (or use it
        as a context manager) when done."""
        sub = Subscription(self._buffer_size, notify=notify, on_drop=on_drop)
        sub.join(self._by_order, order_id)
        return sub

    def subscribe_wallet(
        self, wallet: str, *, notify: Notify | None = None, on_drop: Notify | None = None
    ) -> Subscription:
        sub = Subscription(self._buffer_size, notify=notify, on_drop=on_drop)
        sub.join(self._by_wallet, wallet)
        return sub

    @property
    def subscriber_count(self) -> int:
        return sum(
            len(tuple(_members(entry)))
            for index in (self._by_order, self._by_wallet)
            for entry in index.values()
        )

    def deliver_local(self, delivery: Delivery) -> None:
        by_order = self._by_order.get(delivery.order_id)
        by_wallet = self._by_wallet.get(delivery.wallet)
        if by_order is None and by_wallet is None:
            return
        # A list of its own: a subscriber that overflows leaves the index meanwhile.
        for sub in [*_members(by_order), *_members(by_wallet)]:
            if not sub.deliver(delivery):
                # Once: a dropped subscriber has left the hub and is not offered more.
                log.warning("dropped a slow subscriber of order %s", delivery.order_id)

    @property
    def relaying(self) -> bool:
        """Whether published events go to the other processes: not while none listens."""
        return self._relaying

    def publish(self, events: Sequence[OrderEvent]) -> None:
        """Deliver here, and hand the events to the sender that relays them to the other
        processes; a Redis outage costs only the relay."""
        deliveries = [self.delivery(e) for e in events]
        for delivery in deliveries:
            self.deliver_local(delivery)
        if not deliveries or not self._relaying:
            return
        self._outbox.extend(deliveries)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="hub-send")

    async def _send(self) -> None:
        """Publish the outbox, one message for all that gathered while the last was sent."""
        try:
            while self._outbox:
                deliveries, self._outbox = self._outbox, []
                try:
                    await self._redis.publish(self._channel, encode_relay(self._origin, deliveries))
                except (RedisError, OSError) as exc:
                    log.warning("could not relay %d events: %s", len(deliveries), exc)
        finally:
            self._sender = None

    async def start(self) -> None:
        """Listen on the channel and greet the processes there; returns once each has
        answered (or GREETING_TIMEOUT_S passed), so that each relays to this one."""
        self._relay_task = asyncio.create_task(self._relay(), name="hub-relay")
        await self._subscribed.wait()
        try:
            async with asyncio.timeout(GREETING_TIMEOUT_S):
                await self._greeted.wait()
        except TimeoutError:
            log.warning("not every process answered this one's hello; relaying anyway")
        self._peers_task = asyncio.create_task(self._watch_peers(), name="hub-peers")

    async def stop(self) -> None:
        if self._sender is not None:
            # What this process committed last still reaches the others, unless Redis hangs.
            await asyncio.wait((self._sender,), timeout=SEND_ON_STOP_S)
        for task in (self._sender, self._peers_task, self._relay_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def check_peers(self) -> None:
        """Relay while anybody else listens on the channel, not while this process alone
        does. A hello heard while Redis was asked wins over an answer of one."""
        hellos = self._hellos
        ((_, listeners),) = await self._redis.pubsub_numsub(self._channel)
        if listeners > 1:
            self._switch_relaying(True, "another process listens")
        elif not self._listening:
            # The one listener Redis counts is then another process.
            self._switch_relaying(True, "this process's subscription is down")
        elif hellos == self._hellos:
            self._switch_relaying(False, "no other process listens")

    def _switch_relaying(self, on: bool, why: str) -> None:
        if on != self._relaying:
            log.info("%s on %s: events %s relayed", why, self._channel, "are" if on else "are not")
        self._relaying = on

    async def _watch_peers(self) -> None:
        while True:
            await asyncio.sleep(PEER_CHECK_S)
            try:
                await self.check_peers()
            except (RedisError, OSError):
                self._switch_relaying(True, "Redis did not say who listens")

    async def _greet(self) -> None:
        """Say hello; `_greeted` is set once every other listener has answered."""
        listeners = await self._redis.publish(self._channel, f"{_HELLO}\t{self._origin}")
        self._answers_wanted = int(listeners) - 1
        if self._answers_wanted <= 0:
            self._greeted.set()

    async def _control(self, text: str) -> None:
        kind, origin, *rest = text.split("\t")
        if origin == self._origin:
            return
        if kind == _HELLO:
            # On before the answer: the new process serves nobody until it has them all.
            self._hellos += 1
            self._switch_relaying(True, f"process {origin} started")
            await self._redis.publish(self._channel, f"{_ACK}\t{self._origin}\t{origin}")
        elif kind == _ACK and rest == [self._origin]:
            self._answers_wanted -= 1
            if self._answers_wanted <= 0:
                self._greeted.set()

    async def _relay(self) -> None:
        """Deliver events published by other processes, resubscribing after Redis blips."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                # Whoever started while this one was away did not hear it: on, and hello.
                self._listening = True
                self._switch_relaying(True, "subscribed")
                await self._greet()
                self._subscribed.set()
                async for message in pubsub.listen():
                    text = _text(message["data"])
                    if text.startswith("!"):
                        await self._control(text)
                        continue
                    # Every process hears its own batches too: they were delivered here
                    # before they were published.
                    if relay_origin(text) == self._origin:
                        continue
                    _, deliveries = decode_relay(text)
                    for delivery in deliveries:
                        self.deliver_local(delivery)
            except (RedisError, OSError) as exc:
                log.warning("hub relay lost Redis (%s); resubscribing", exc)
                self._listening = False
                self._switch_relaying(True, "lost Redis")
                self._subscribed.set()
                self._greeted.set()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
