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
from order_engine.hub import Hub
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
    with (
        here.subscribe_order(order_id) as local,
        there.subscribe_order(order_id) as remote,
        there.subscribe_wallet(WALLET) as by_wallet,
    ):
        await here.publish([event(order_id, 1)])
        # A batch of events crosses as one message, each delivered in order.
        await here.publish([event(order_id, 2), event(order_id, 3)])
        got_remote = [await asyncio.wait_for(remote.get(), 5) for _ in range(3)]
        got_wallet = [await asyncio.wait_for(by_wallet.get(), 5) for _ in range(3)]
        # Redis delivers a channel's messages in order: once the other hub's event 4 is
        # here, this hub's relay has also seen (and must have skipped) its own echoes of 1-3.
        await there.publish([event(order_id, 4)])
        got_local = [await asyncio.wait_for(local.get(), 5) for _ in range(4)]
    assert [e.seq for e in got_remote] == [1, 2, 3]
    assert [e.seq for e in got_wallet] == [1, 2, 3]
    assert json.loads(got_remote[0].text)["data"] == {"reason": "event 1"}
    assert [e.seq for e in got_local] == [1, 2, 3, 4]


async def test_subscribers_hear_only_their_order_and_wallet(hubs: tuple[Hub, Hub]) -> None:
    here, _ = hubs
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    with here.subscribe_order(mine) as sub, here.subscribe_wallet(WALLET) as wallet_sub:
        await here.publish([event(theirs, 1, wallet=OTHER_WALLET), event(mine, 1)])
        assert (await sub.get()).order_id == mine
        assert (await wallet_sub.get()).order_id == mine
    assert here.subscriber_count == 0
