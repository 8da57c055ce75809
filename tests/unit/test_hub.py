"""The hub's in-process parts: bounded subscriptions, local fan-out, the relay's wire format.

Hub takes a Redis client but local delivery never touches it; the real `redis` fixture is
passed anyway so nothing here is a stand-in.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest
import redis.asyncio as aioredis

from order_engine.api.serialize import encode_event
from order_engine.domain.events import Confirmed, Failed, OrderEvent
from order_engine.domain.orders import OrderStatus
from order_engine.hub import (
    Delivery,
    Hub,
    Subscription,
    decode_relay,
    encode_relay,
)
from tests.support import OTHER_WALLET, WALLET


def event(order_id: uuid.UUID | None = None, seq: int = 1, wallet: str = WALLET) -> Delivery:
    return Delivery(order_id or uuid.uuid4(), wallet, seq, False, f'{{"seq": {seq}}}')


def make_hub(redis: aioredis.Redis, redis_prefix: str, buffer_size: int) -> Hub:
    return Hub(redis, f"{redis_prefix}events", buffer_size=buffer_size, encode=encode_event)


def test_subscription_returns_buffered_events_in_order() -> None:
    sub = Subscription(buffer_size=3)
    events = [event(seq=n) for n in (1, 2, 3)]
    for e in events:
        assert sub.deliver(e)
    assert sub.take() == events
    assert sub.take() == []
    assert not sub.dropped


def test_subscriber_is_notified_when_its_empty_buffer_gets_an_event() -> None:
    calls: list[int] = []
    sub = Subscription(buffer_size=3, notify=lambda: calls.append(1))
    sub.deliver(event(seq=1))
    sub.deliver(event(seq=2))
    # Once per empty-to-not-empty: the subscriber takes everything buffered at once.
    assert len(calls) == 1
    sub.take()
    sub.deliver(event(seq=3))
    assert len(calls) == 2


def test_overflowing_subscription_is_dropped_once_and_keeps_nothing() -> None:
    drops: list[int] = []
    sub = Subscription(buffer_size=2, on_drop=lambda: drops.append(1))
    assert sub.deliver(event(seq=1))
    assert sub.deliver(event(seq=2))
    assert not sub.dropped
    # The third event does not fit: the publisher must not wait for a slow reader.
    assert not sub.deliver(event(seq=3))
    assert sub.dropped
    assert not sub.deliver(event(seq=4))
    assert drops == [1]
    # Buffered events are not handed out after a drop: the reader has a gap either way
    # and must catch up by replay from Postgres.
    assert sub.take() == []


async def test_deliver_local_reaches_its_subscribers_and_no_others(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    # A buffer of one makes a stray delivery visible: it would take the slot, so the
    # expected event would overflow and drop the subscriber.
    hub = make_hub(redis, redis_prefix, buffer_size=1)
    order_id = uuid.uuid4()
    with hub.subscribe_order(order_id) as by_order, hub.subscribe_wallet(WALLET) as by_wallet:
        assert hub.subscriber_count == 2
        hub.deliver_local(event(uuid.uuid4(), wallet=OTHER_WALLET))
        own = event(order_id)
        hub.deliver_local(own)
        assert not by_order.dropped
        assert not by_wallet.dropped
        assert by_order.take() == [own]
        assert by_wallet.take() == [own]


async def test_wallet_subscriber_gets_every_order_of_that_wallet(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    hub = make_hub(redis, redis_prefix, buffer_size=4)
    first, second = event(uuid.uuid4()), event(uuid.uuid4())
    with hub.subscribe_wallet(WALLET) as by_wallet:
        hub.deliver_local(first)
        hub.deliver_local(second)
        assert by_wallet.take() == [first, second]


async def test_every_subscriber_of_an_order_gets_the_event(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    hub = make_hub(redis, redis_prefix, buffer_size=4)
    order_id = uuid.uuid4()
    with hub.subscribe_order(order_id) as one, hub.subscribe_order(order_id) as two:
        published = event(order_id)
        hub.deliver_local(published)
        assert one.take() == [published]
        assert two.take() == [published]


async def test_leaving_the_subscription_stops_delivery(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    hub = make_hub(redis, redis_prefix, buffer_size=1)
    order_id = uuid.uuid4()
    with hub.subscribe_order(order_id) as by_order, hub.subscribe_wallet(WALLET) as by_wallet:
        pass
    assert hub.subscriber_count == 0
    # Two events into a buffer of one would drop a subscriber still registered.
    hub.deliver_local(event(order_id, seq=1))
    hub.deliver_local(event(order_id, seq=2))
    assert not by_order.dropped
    assert not by_wallet.dropped


async def test_slow_subscriber_is_dropped_at_once_with_one_log_line(
    redis: aioredis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    hub = make_hub(redis, redis_prefix, buffer_size=2)
    order_id = uuid.uuid4()
    drops: list[int] = []
    with (
        hub.subscribe_order(order_id, on_drop=lambda: drops.append(1)) as slow,
        hub.subscribe_order(order_id) as fast,
    ):
        first = event(order_id, seq=1)
        hub.deliver_local(first)
        assert fast.take() == [first]
        with caplog.at_level(logging.WARNING, logger="order_engine.hub"):
            for seq in range(2, 10):
                hub.deliver_local(event(order_id, seq=seq))
                fast.take()
        assert slow.dropped
        assert not fast.dropped
        # Told at the overflow, not when it next reads; out of the hub from then on.
        assert drops == [1]
        assert hub.subscriber_count == 1
    lines = [r for r in caplog.records if "dropped a slow subscriber" in r.getMessage()]
    assert len(lines) == 1


def test_a_relayed_batch_decodes_to_the_same_deliveries_and_origin() -> None:
    """Messages whose strings hold newlines and tabs (escaped by JSON) survive the
    line-and-tab framing of the relay."""
    confirmed = OrderEvent(
        order_id=uuid.uuid4(),
        user_wallet=WALLET,
        seq=42,
        status=OrderStatus.CONFIRMED,
        timestamp=datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        data=Confirmed(tx_hash="5x", amount_out=Decimal("12.5"), executed_price=Decimal(5)),
    )
    failed = attrs.evolve(
        confirmed,
        seq=43,
        status=OrderStatus.FAILED,
        data=Failed(code="dex_error", reason="line one\n\tline two", attempt=3),
    )
    batch = [Hub.delivery_of(e, encode_event) for e in (confirmed, failed)]
    origin, decoded = decode_relay(encode_relay("process-a", batch))
    assert origin == "process-a"
    assert decoded == batch
    assert decoded[1].terminal
    assert json.loads(decoded[1].text)["data"]["reason"] == "line one\n\tline two"


def test_decode_accepts_bytes_as_redis_delivers_them() -> None:
    original = event(seq=7)
    payload = encode_relay("p", [original]).encode()
    assert decode_relay(payload) == ("p", [original])


@pytest.mark.parametrize("status", list(OrderStatus))
def test_every_status_survives_the_relay(status: OrderStatus) -> None:
    original = OrderEvent(
        order_id=uuid.uuid4(),
        user_wallet=OTHER_WALLET,
        seq=1,
        status=status,
        timestamp=datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
        data=Failed(code="x", reason="y", attempt=1),
    )
    delivery = Hub.delivery_of(original, encode_event)
    assert decode_relay(encode_relay("o", [delivery]))[1] == [delivery]
    assert delivery.terminal is status.is_terminal
    assert json.loads(delivery.text)["timestamp"] == "2026-01-01T17:00:00.000Z"
