"""Events cross processes through the Redis relay, once each."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from order_engine.api.serialize import encode_event
from order_engine.domain.events import Cancelled, OrderEvent
from order_engine.domain.orders import OrderStatus
from order_engine.hub import Delivery, Hub, Subscription, decode_relay
from tests.support import OTHER_WALLET, WALLET


def event(order_id: uuid.UUID, seq: int, wallet: str = WALLET) -> OrderEvent:
    return OrderEvent(
        order_id=order_id,
        user_wallet=wallet,
        seq=seq,
        status=OrderStatus.ROUTING,
        timestamp=datetime.now(UTC),
        data=Cancelled(reason=f"event {seq}"),
    )


class Collector:
    """What a subscription received, awaited as the relay delivers it."""

    def __init__(self) -> None:
        self.events: list[Delivery] = []
        self._arrived = asyncio.Event()
        self.sub: Subscription | None = None

    def notify(self) -> None:
        self._arrived.set()

    async def first(self, count: int) -> list[Delivery]:
        assert self.sub is not None
        async with asyncio.timeout(5):
            while True:
                self._arrived.clear()
                self.events.extend(self.sub.take())
                if len(self.events) >= count:
                    return self.events[:count]
                await self._arrived.wait()


def collect(hub: Hub, order_id: uuid.UUID | None = None, wallet: str | None = None) -> Collector:
    collector = Collector()
    if order_id is not None:
        collector.sub = hub.subscribe_order(order_id, notify=collector.notify)
    else:
        assert wallet is not None
        collector.sub = hub.subscribe_wallet(wallet, notify=collector.notify)
    return collector


@pytest.fixture
async def hubs(redis: aioredis.Redis, redis_prefix: str) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two hubs on one channel, as two server processes would have."""
    first = Hub(redis, f"{redis_prefix}events", buffer_size=16, encode=encode_event)
    second = Hub(redis, f"{redis_prefix}events", buffer_size=16, encode=encode_event)
    await first.start()
    await second.start()
    yield first, second
    await first.stop()
    await second.stop()


async def test_event_published_on_one_hub_reaches_the_other_once(
    hubs: tuple[Hub, Hub],
) -> None:
    here, there = hubs
    order_id = uuid.uuid4()
    local = collect(here, order_id)
    remote = collect(there, order_id)
    by_wallet = collect(there, wallet=WALLET)
    here.publish([event(order_id, 1)])
    # A batch of events crosses as one message, each delivered in order.
    here.publish([event(order_id, 2), event(order_id, 3)])
    got_remote = await remote.first(3)
    got_wallet = await by_wallet.first(3)
    # Redis delivers a channel's messages in order: once the other hub's event 4 is
    # here, this hub's relay has also seen (and must have skipped) its own echoes of 1-3.
    there.publish([event(order_id, 4)])
    got_local = await local.first(4)
    assert len(local.events) == 4
    assert [e.seq for e in got_remote] == [1, 2, 3]
    assert [e.seq for e in got_wallet] == [1, 2, 3]
    assert json.loads(got_remote[0].text)["data"] == {"reason": "event 1"}
    assert [e.seq for e in got_local] == [1, 2, 3, 4]


async def test_events_published_while_a_relay_is_on_its_way_follow_it_in_one_message(
    hubs: tuple[Hub, Hub], redis: aioredis.Redis, redis_prefix: str
) -> None:
    """Publishing does not wait for Redis: the writers of three batches in one turn of the
    loop go on at once, and the three cross as one message, in order."""
    here, there = hubs
    order_id = uuid.uuid4()
    remote = collect(there, order_id)
    async with redis.pubsub() as tap:
        await tap.subscribe(f"{redis_prefix}events")
        for seq in (1, 2, 3):
            here.publish([event(order_id, seq)])
        assert [e.seq for e in await remote.first(3)] == [1, 2, 3]
        crossed: list[list[int]] = []
        async with asyncio.timeout(5):
            while not crossed or crossed[-1][-1] != 3:
                message = await tap.get_message(timeout=5)
                if message is not None and message["type"] == "message":
                    crossed.append([d.seq for d in decode_relay(message["data"])[1]])
    assert crossed == [[1, 2, 3]]


async def test_a_stopping_hub_still_relays_what_it_published_last(
    hubs: tuple[Hub, Hub],
) -> None:
    here, there = hubs
    order_id = uuid.uuid4()
    remote = collect(there, order_id)
    here.publish([event(order_id, 1)])
    await here.stop()
    assert [e.seq for e in await remote.first(1)] == [1]


async def test_subscribers_hear_only_their_order_and_wallet(hubs: tuple[Hub, Hub]) -> None:
    here, _ = hubs
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    by_order, by_wallet = collect(here, mine), collect(here, wallet=WALLET)
    here.publish([event(theirs, 1, wallet=OTHER_WALLET), event(mine, 1)])
    assert [e.order_id for e in await by_order.first(1)] == [mine]
    assert [e.order_id for e in await by_wallet.first(1)] == [mine]
    for collector in (by_order, by_wallet):
        assert collector.sub is not None
        collector.sub.leave()
    assert here.subscriber_count == 0


async def test_a_lone_hub_stops_relaying_and_a_starting_one_is_relayed_to_once_it_is_up(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    """Alone on the channel, a process's batches would come back to itself only. A second
    process's start() returns only after the first has turned relaying back on, so an
    event the first publishes right then reaches the second's subscribers; once the
    second has gone, the first stops again."""
    channel = f"{redis_prefix}events"
    first = Hub(redis, channel, buffer_size=16, encode=encode_event)
    await first.start()
    try:
        assert first.relaying
        await first.check_peers()
        assert not first.relaying
        order_id = uuid.uuid4()
        local = collect(first, order_id)
        first.publish([event(order_id, 1)])
        assert [e.seq for e in await local.first(1)] == [1]

        second = Hub(redis, channel, buffer_size=16, encode=encode_event)
        await second.start()
        try:
            assert first.relaying
            remote = collect(second, order_id)
            first.publish([event(order_id, 2)])
            assert [e.seq for e in await remote.first(1)] == [2]
            await first.check_peers()
            assert first.relaying
        finally:
            await second.stop()
        # Redis drops the second's subscription when it reads the closed connection,
        # which another connection's question may come before: asked until it has.
        async with asyncio.timeout(5):
            await first.check_peers()
            while first.relaying:
                await asyncio.sleep(0.01)
                await first.check_peers()
    finally:
        await first.stop()
