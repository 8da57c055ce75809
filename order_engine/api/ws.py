"""WebSocket sessions: one order's status stream, replayed from Postgres and then live.

Once a socket is open (after the 101) nothing is ever answered in HTTP: every failure
ends in one `{"type": "error", …}` message, when the socket can still take it, and a
close whose code says why (see `_end`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from order_engine.api.access import client_of
from order_engine.api.appkeys import CHAIN_CLIENT, HUB, ORDERS, SETTINGS, WEBSOCKETS, WS_CLIENTS
from order_engine.api.errors import (
    RETRY_AFTER_S,
    ApiError,
    FieldError,
    error_body,
    from_domain_error,
    validation_error,
)
from order_engine.api.orders_service import OrderService
from order_engine.api.schemas import (
    MAX_SEQ,
    parse_int_param,
    parse_order,
    parse_order_id,
    parse_wallet,
)
from order_engine.api.serialize import order_json, price_message
from order_engine.api.strict_json import parse_json
from order_engine.chain.client import ChainClient
from order_engine.domain.errors import DomainError
from order_engine.domain.orders import Order, OrderStatus
from order_engine.hub import Delivery, Hub, Subscription
from order_engine.outage import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

FIRST_MESSAGE_TIMEOUT_S = 30.0
# How long an error close or a slow client's close may take before the connection is
# cut: a client that does not read cannot keep its socket open by not answering. A
# normal close (after the last event) waits longer for the client's answer.
CLOSE_TIMEOUT_S = 0.5
NORMAL_CLOSE_TIMEOUT_S = 5.0


def close_code(status: int) -> int:
    """The close code of an HTTP status: 4000 + a 4xx (4400, 4404, 4429, …); 1013 (try
    again later) for 503; 1011 for any other server error."""
    if 400 <= status < 500:
        return 4000 + status
    return WSCloseCode.TRY_AGAIN_LATER if status == 503 else WSCloseCode.INTERNAL_ERROR


CLOSE_BAD_REQUEST = close_code(400)
CLOSE_NOT_FOUND = close_code(404)
CLOSE_CONFLICT = close_code(409)
CLOSE_RATE_LIMITED = close_code(429)


async def _close_within(
    request: web.Request,
    ws: web.WebSocketResponse,
    code: int,
    reason: str,
    timeout_s: float = CLOSE_TIMEOUT_S,
) -> None:
    """Close, giving the client `timeout_s` to take the frame and answer it; then a
    connection with data the client never took is aborted: closed gracefully, it would
    stay open until the client read it all."""
    try:
        async with asyncio.timeout(timeout_s):
            await ws.close(code=code, message=reason.encode()[:123])
    except TimeoutError:
        pass
    transport = request.transport
    if transport is not None and transport.get_write_buffer_size():
        transport.abort()


async def _close_normally(request: web.Request, ws: web.WebSocketResponse) -> None:
    await _close_within(request, ws, WSCloseCode.OK, "", NORMAL_CLOSE_TIMEOUT_S)


async def _close_with_error(
    request: web.Request,
    ws: web.WebSocketResponse,
    error: ApiError,
    code: int,
) -> None:
    """One error message in the API's error fields, then the close."""
    body = error_body(error.code, error.message, error.details, error.fields)["error"]
    assert isinstance(body, dict)
    if not ws.closed:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await ws.send_json({"type": "error", **body})
        except (TimeoutError, ConnectionResetError):
            pass
    await _close_within(request, ws, code, error.code)


async def _end(request: web.Request, ws: web.WebSocketResponse, exc: Exception) -> None:
    """End an open socket because of `exc`, with the close code its cause deserves."""
    if isinstance(exc, ConnectionResetError):
        log.info("%s: the client went away mid-send", request.path)
        await _close_within(request, ws, WSCloseCode.GOING_AWAY, "gone")
        return
    if isinstance(exc, DomainError):
        exc = from_domain_error(exc)
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, DEPENDENCY_ERRORS):
        log.warning("%s: dependency unavailable: %r", request.path, exc)
        error = ApiError(503, "unavailable", "a dependency is unavailable")
    else:
        log.error("%s: socket failed", request.path, exc_info=exc)
        error = ApiError(500, "internal_error", "internal error")
    await _close_with_error(request, ws, error, close_code(error.status))


class OrderFollower:
    """Sends one order's events in seq order, each once, whatever order they arrive in.

    Replayed and live events overlap (a live event may also be in the replay) and the
    live stream may skip (a dropped relay message): an event at or below the last seq
    sent is skipped, and one beyond the next seq is preceded by the missing ones, read
    from Postgres, where every published event is already committed.
    """

    __slots__ = ("_hub", "_order_id", "_orders", "_ws", "last_seq", "status")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        orders: OrderService,
        hub: Hub,
        order_id: uuid.UUID,
        since: int,
        status: OrderStatus | None = None,
    ) -> None:
        """`status`: the order's status now, when its sends should keep track of it (a
        resting order's sockets, which get prices only while it is `waiting`)."""
        self._ws = ws
        self._orders = orders
        self._hub = hub
        self._order_id = order_id
        self.last_seq = since
        self.status = status

    async def replay(self) -> bool:
        """Send what Postgres holds after the last seq sent; True if that ends the order."""
        missed = await self._orders.events(self._order_id, after_seq=self.last_seq)
        return await self.send([self._hub.delivery(e) for e in missed])

    async def send(self, events: Iterable[Delivery]) -> bool:
        """Send what is new in `events`; True once the terminal event has been sent."""
        for event in events:
            if event.seq <= self.last_seq:
                continue
            if event.seq > self.last_seq + 1:
                missed = await self._orders.events(self._order_id, after_seq=self.last_seq)
                return await self.send(self._hub.delivery(e) for e in missed if e.seq <= event.seq)
            if self.status is not None:
                # Before the send, so that no price follows the message that ended the wait.
                self.status = OrderStatus(orjson.loads(event.text)["status"])
            await self._ws.send_str(event.text)
            self.last_seq = event.seq
            if event.terminal:
                return True
        return False


SendEvents = Callable[[list[Delivery]], Awaitable[bool]]
Tick = Callable[[], Awaitable[None]]
# A resting order's sockets get its pair's price at most this often (API.md).
TICK_S = 1.0
Subscribe = Callable[..., Subscription]


class Relay:
    """Relays a subscription's events to a socket from its handler, while a task of its
    own reads the client, until the last event the socket is for (`send` returns True),
    the client leaves, or the hub drops the subscriber.

    The handler waits on one future while nothing happens; no queue is held. The reader
    is stopped before the handler closes the socket, so that the close waits for the
    client's answer (closed from another task, aiohttp cuts the connection instead). A
    dropped subscriber is closed with 1013 as soon as the handler is free, or at once,
    aborting its connection, when data the client has not taken is still queued: the
    handler may be blocked sending to it, and a close frame would queue behind the rest.
    """

    __slots__ = ("_request", "_send", "_tick", "_wake", "_ws", "dropped", "sub")

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        send: SendEvents,
        tick: Tick | None = None,
    ) -> None:
        """`tick`: what else the socket sends, between events, every TICK_S at most."""
        self._request = request
        self._ws = ws
        self._send = send
        self._tick = tick
        self._wake: asyncio.Future[None] | None = None
        self.dropped = False
        self.sub: Subscription | None = None

    def subscribe(self, subscribe: Subscribe, key: object) -> Subscription:
        self.sub = subscribe(key, notify=self._notify, on_drop=self._on_drop)
        return self.sub

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _on_drop(self) -> None:
        self.dropped = True
        transport = self._request.transport
        if transport is not None and transport.get_write_buffer_size():
            transport.abort()
        self._notify()

    async def _read_until_closed(self) -> None:
        try:
            async for _ in self._ws:
                pass  # Reading answers the client's pings and close; it has nothing to say.
        finally:
            self._notify()

    async def run(self) -> None:
        assert self.sub is not None
        reader = asyncio.create_task(self._read_until_closed())
        loop = asyncio.get_running_loop()
        next_tick = time.monotonic()
        try:
            while not (reader.done() or self.dropped):
                if events := self.sub.take():
                    if await self._send(events):
                        break
                    continue
                if self._tick is not None and time.monotonic() >= next_tick:
                    await self._tick()
                    next_tick = time.monotonic() + TICK_S
                # The future itself is awaited: asyncio.wait() would keep a set, a waiter
                # and a frame of its own for every idle socket.
                self._wake = wake = loop.create_future()
                if self._tick is None:
                    await wake
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(0.0, next_tick - time.monotonic())):
                            await wake
                self._wake = None
        finally:
            reader.cancel()
            await asyncio.wait([reader])
        if self.dropped:
            await _close_within(self._request, self._ws, WSCloseCode.TRY_AGAIN_LATER, "too slow")
        else:
            await _close_normally(self._request, self._ws)


def _prices(
    ws: web.WebSocketResponse, follower: OrderFollower, order: Order, chain: ChainClient
) -> Tick:
    """While the order rests, its pair's best price when it changed, from this process's
    view of the chain (so from any process)."""
    sent: Decimal | None = None

    async def tick() -> None:
        nonlocal sent
        if follower.status is not OrderStatus.WAITING:
            return
        price = chain.best_price(order.input_token, order.output_token)
        if price is not None and price != sent:
            await ws.send_str(price_message(order.id, price, datetime.now(UTC)))
            sent = price

    return tick


def _follower(
    order: Order, request: web.Request, ws: web.WebSocketResponse, since: int
) -> tuple[OrderFollower, Tick | None]:
    """The order's follower, and its price ticks if it rests: apart from _relay_order, so
    that the order read here is not kept by the frame of every open socket."""
    orders, hub = request.app[ORDERS], request.app[HUB]
    if not order.type.rests:
        return OrderFollower(ws, orders, hub, order.id, since), None
    follower = OrderFollower(ws, orders, hub, order.id, since, order.status)
    return follower, _prices(ws, follower, order, request.app[CHAIN_CLIENT])


async def _relay_order(
    request: web.Request, ws: web.WebSocketResponse, order_id: uuid.UUID, since: int
) -> None:
    """The order's events after `since` from Postgres, then live ones until terminal;
    and, while a limit or sniper order rests, its pair's price now and then."""
    orders, hub = request.app[ORDERS], request.app[HUB]
    follower, tick = _follower(await orders.get(order_id), request, ws, since)
    relay = Relay(request, ws, follower.send, tick)
    # Subscribed before reading the history, so that nothing published in between is
    # missed; the follower drops what both deliver.
    with relay.subscribe(hub.subscribe_order, order_id):
        terminal = (await orders.get(order_id)).status.is_terminal
        if await follower.replay() or terminal:
            await _close_normally(request, ws)
            return
        await relay.run()


def _stream_order(request: web.Request, ws: web.WebSocketResponse) -> Awaitable[None]:
    order_id = parse_order_id(request.match_info["orderId"])
    since = parse_int_param(request.query.get("since"), "since", default=0, low=0, high=MAX_SEQ)
    return _relay_order(request, ws, order_id, since)


async def _stream_wallet(request: web.Request, ws: web.WebSocketResponse) -> None:
    wallet = parse_wallet(request.query.get("wallet", ""))

    async def send(events: list[Delivery]) -> bool:
        for event in events:
            await ws.send_str(event.text)
        return False

    relay = Relay(request, ws, send)
    with relay.subscribe(request.app[HUB].subscribe_wallet, wallet):
        await relay.run()


async def _execute_order(request: web.Request, ws: web.WebSocketResponse) -> None:
    try:
        async with asyncio.timeout(FIRST_MESSAGE_TIMEOUT_S):
            msg = await ws.receive()
    except TimeoutError:
        raise validation_error(
            [FieldError("body", f"no order received within {FIRST_MESSAGE_TIMEOUT_S:g} s")]
        ) from None
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return
    if msg.type != WSMsgType.TEXT:
        raise ApiError(400, "invalid_json", "the first message must be a JSON text message")
    settings = request.app[SETTINGS]
    new = parse_order(
        parse_json(msg.data, max_bytes=settings.max_body_bytes),
        max_input_amount=settings.max_input_amount,
    )
    order = (await request.app[ORDERS].place(new, execute=True)).order
    await ws.send_json({"type": "accepted", "order": order_json(order)})
    await _relay_order(request, ws, order.id, 0)


Session = Callable[[web.Request, web.WebSocketResponse], Awaitable[None]]


def _admit(request: web.Request) -> str:
    """The client's address, once the per-client and total socket caps let it in; a
    refusal is an HTTP answer, since nothing is upgraded yet."""
    settings = request.app[SETTINGS]
    if len(request.app[WEBSOCKETS]) >= settings.ws_max_total:
        raise ApiError(
            503,
            "unavailable",
            f"the server holds its maximum of {settings.ws_max_total} WebSockets",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    client = client_of(request)
    if request.app[WS_CLIENTS][client] >= settings.ws_max_per_client:
        raise ApiError(
            429,
            "rate_limited",
            f"at most {settings.ws_max_per_client} WebSockets per client address",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return client


async def _serve_socket(request: web.Request, session: Session) -> web.WebSocketResponse:
    """What every socket shares: the caps, heartbeats, the registry of open sockets for
    shutdown, and how any failure ends it once it is open."""
    settings = request.app[SETTINGS]
    # No compression: status messages are small, and a deflate context costs about
    # 100 KB a socket. Clients send one order body at most, as bytes: the bounded parser
    # decodes it, so that text that is not UTF-8 is a 4400 like any other bad body.
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_s,
        compress=False,
        max_msg_size=settings.max_body_bytes,
        decode_text=False,
    )
    if not ws.can_prepare(request).ok:
        raise validation_error([FieldError("Upgrade", "this route is a WebSocket")])
    client = _admit(request)
    sockets, per_client = request.app[WEBSOCKETS], request.app[WS_CLIENTS]
    # Counted from before the handshake, so that concurrent upgrades cannot pass the caps.
    sockets.add(ws)
    per_client[client] += 1
    try:
        try:
            await ws.prepare(request)
        except ConnectionResetError:
            # The 101 may be half written: nothing more, not even an HTTP error, follows.
            log.info("%s: the client went away during the handshake", request.path)
            return ws
        try:
            await session(request, ws)
        except Exception as exc:
            await _end(request, ws, exc)
    finally:
        sockets.discard(ws)
        per_client[client] -= 1
        if not per_client[client]:
            del per_client[client]
    return ws


# Each route is _serve_socket with its session: a partial, not a wrapping coroutine,
# whose frame every open socket would keep.

# /ws/orders/{orderId}?since=N
order_socket = functools.partial(_serve_socket, session=_stream_order)
# /ws/orders?wallet=W: live status messages of every order of the wallet.
wallet_socket = functools.partial(_serve_socket, session=_stream_wallet)
# /api/orders/execute (GET with Upgrade): an order in, its statuses out.
execute_socket = functools.partial(_serve_socket, session=_execute_order)
