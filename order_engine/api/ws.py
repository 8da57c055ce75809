"""WebSocket sessions: one order's status stream, replayed from Postgres and then live."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

from aiohttp import WSCloseCode, web

from order_engine.api.errors import ApiError
from order_engine.api.schemas import parse_int_param, parse_order_id
from order_engine.api.serialize import event_message
from order_engine.appkeys import HUB, ORDERS, SETTINGS, WEBSOCKETS
from order_engine.hub import SubscriberDropped, Subscription
from order_engine.orders import OrderEvent
from order_engine.outage import DEPENDENCY_ERRORS
from order_engine.services.orders import OrderService
from order_engine.store import OrderNotFound

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404


async def _close_with_error(
    ws: web.WebSocketResponse, code: str, message: str, close_code: int
) -> None:
    await ws.send_json({"type": "error", "code": code, "message": message})
    await ws.close(code=close_code, message=code.encode()[:123])


class OrderFollower:
    """Sends one order's events in seq order, each once, whatever order they arrive in.

    Replayed and live events overlap (a live event may also be in the replay) and the
    live stream may skip (a dropped relay message): an event at or below the last seq
    sent is skipped, and one beyond the next seq is preceded by the missing ones, read
    from Postgres, where every published event is already committed.
    """

    def __init__(
        self, ws: web.WebSocketResponse, orders: OrderService, order_id: uuid.UUID, since: int
    ) -> None:
        self._ws = ws
        self._orders = orders
        self._order_id = order_id
        self.last_seq = since

    async def send(self, events: Iterable[OrderEvent]) -> bool:
        """Send what is new in `events`; True once the terminal event has been sent."""
        for event in events:
            if event.seq <= self.last_seq:
                continue
            if event.seq > self.last_seq + 1:
                missed = await self._orders.events(self._order_id, after_seq=self.last_seq)
                return await self.send(e for e in missed if e.seq <= event.seq)
            await self._ws.send_json(event_message(event))
            self.last_seq = event.seq
            if event.status.is_terminal:
                return True
        return False

    async def follow(self, sub: Subscription) -> None:
        """Send live events until the terminal one; SubscriberDropped if it falls behind."""
        while not await self.send([await sub.get()]):
            pass


async def _until_client_leaves(ws: web.WebSocketResponse) -> None:
    async for _ in ws:
        pass  # Clients have nothing to say on this socket; reading keeps pings answered.


async def _stream_order(request: web.Request, ws: web.WebSocketResponse) -> None:
    try:
        order_id = parse_order_id(request.match_info["orderId"])
        since = parse_int_param(request.query.get("since"), "since", default=0, low=0)
    except ApiError as exc:
        await _close_with_error(ws, exc.code, exc.message, CLOSE_BAD_REQUEST)
        return
    orders = request.app[ORDERS]
    with request.app[HUB].subscribe_order(order_id) as sub:
        # Subscribed before reading the history, so that nothing published in between is
        # missed; the follower drops what both deliver.
        try:
            order = await orders.get(order_id)
        except OrderNotFound as exc:
            await _close_with_error(ws, "order_not_found", str(exc), CLOSE_NOT_FOUND)
            return
        follower = OrderFollower(ws, orders, order_id, since)
        done = await follower.send(await orders.events(order_id, after_seq=since))
        if done or order.status.is_terminal:
            await ws.close(code=WSCloseCode.OK)
            return
        live = asyncio.create_task(follower.follow(sub))
        client = asyncio.create_task(_until_client_leaves(ws))
        await asyncio.wait({live, client}, return_when=asyncio.FIRST_COMPLETED)
        for task in (live, client):
            task.cancel()
        await asyncio.gather(live, client, return_exceptions=True)
        if not live.cancelled() and live.exception() is not None:
            raise live.exception()  # type: ignore[misc]
        await ws.close(code=WSCloseCode.OK)


async def order_socket(request: web.Request) -> web.WebSocketResponse:
    """/ws/orders/{orderId}?since=N"""
    ws = web.WebSocketResponse(heartbeat=request.app[SETTINGS].ws_heartbeat_s)
    await ws.prepare(request)
    request.app[WEBSOCKETS].add(ws)
    try:
        await _stream_order(request, ws)
    except ConnectionResetError:
        log.info("order socket: the client went away mid-send")
    except SubscriberDropped:
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow; reconnect with since")
    except DEPENDENCY_ERRORS as exc:
        log.warning("order socket: dependency unavailable: %r", exc)
        await _close_with_error(
            ws, "unavailable", "a dependency is unavailable", WSCloseCode.TRY_AGAIN_LATER
        )
    finally:
        request.app[WEBSOCKETS].discard(ws)
    return ws
