"""WebSocket sessions: one order's status stream, replayed from Postgres and then live."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
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
    parse_int_param,
    parse_json,
    parse_order,
    parse_order_id,
    parse_wallet,
)
from order_engine.api.serialize import order_json, price_message
from order_engine.chain.client import ChainClient
from order_engine.domain.errors import ClientOrderIdInUse, OrderNotFound, RateLimited
from order_engine.domain.orders import Order, OrderStatus
from order_engine.hub import Delivery, Hub, SubscriberDropped, Subscription
from order_engine.outage import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
# A refused order on the execute socket closes with its HTTP status in the range of
# application close codes.
CLOSE_CONFLICT = 4409
CLOSE_RATE_LIMITED = 4429
FIRST_MESSAGE_TIMEOUT_S = 30.0
# A resting order's sockets get its pair's price at most this often (API.md).
PRICE_INTERVAL_S = 1.0


async def _close_with_error(
    ws: web.WebSocketResponse,
    code: str,
    message: str,
    close_code: int,
    details: Sequence[FieldError] = (),
    fields: dict[str, str] | None = None,
) -> None:
    """One error message in the API's error fields, then the close."""
    error = error_body(code, message, details, fields)["error"]
    assert isinstance(error, dict)
    await ws.send_json({"type": "error", **error})
    await ws.close(code=close_code, message=code.encode()[:123])


class OrderFollower:
    """Sends one order's events in seq order, each once, whatever order they arrive in.

    Replayed and live events overlap (a live event may also be in the replay) and the
    live stream may skip (a dropped relay message): an event at or below the last seq
    sent is skipped, and one beyond the next seq is preceded by the missing ones, read
    from Postgres, where every published event is already committed.
    """

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
        return await self.send(self._hub.delivery(e) for e in missed)

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

    async def follow(self, sub: Subscription) -> None:
        """Send live events until the terminal one; SubscriberDropped if it falls behind."""
        while not await self.send([await sub.get()]):
            pass


async def _until_client_leaves(ws: web.WebSocketResponse) -> None:
    async for _ in ws:
        pass  # Clients have nothing more to say on these sockets; reading answers pings.


async def _until_either_ends(
    ws: web.WebSocketResponse, live: Awaitable[None], *alongside: Awaitable[None]
) -> None:
    """Run `live`, and what runs `alongside` it, until one of them ends or the client
    leaves; re-raise what `live` or one alongside raised."""
    own = [asyncio.ensure_future(live), *map(asyncio.ensure_future, alongside)]
    client = asyncio.create_task(_until_client_leaves(ws))
    await asyncio.wait({*own, client}, return_when=asyncio.FIRST_COMPLETED)
    for task in (*own, client):
        task.cancel()
    await asyncio.gather(*own, client, return_exceptions=True)
    for task in own:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def _send_prices(
    ws: web.WebSocketResponse, follower: OrderFollower, order: Order, chain: ChainClient
) -> None:
    """While the order rests, its pair's best price, when it changed, at most once every
    PRICE_INTERVAL_S; from this process's view of the chain, so from any process."""
    sent: Decimal | None = None
    while True:
        if follower.status is OrderStatus.WAITING:
            price = chain.best_price(order.input_token, order.output_token)
            if price is not None and price != sent:
                await ws.send_str(price_message(order.id, price, datetime.now(UTC)))
                sent = price
        await asyncio.sleep(PRICE_INTERVAL_S)


async def _relay_order(
    request: web.Request, ws: web.WebSocketResponse, order_id: uuid.UUID, since: int
) -> None:
    """The order's events after `since` from Postgres, then live ones until terminal;
    and, while a limit or sniper order rests, its pair's price now and then."""
    orders = request.app[ORDERS]
    with request.app[HUB].subscribe_order(order_id) as sub:
        # Subscribed before reading the history, so that nothing published in between is
        # missed; the follower drops what both deliver.
        try:
            order = await orders.get(order_id)
        except OrderNotFound as exc:
            await _close_with_error(ws, "order_not_found", str(exc), CLOSE_NOT_FOUND)
            return
        rests = order.type.rests
        follower = OrderFollower(
            ws, orders, request.app[HUB], order_id, since, order.status if rests else None
        )
        done = await follower.replay()
        if not (done or order.status.is_terminal):
            prices = [_send_prices(ws, follower, order, request.app[CHAIN_CLIENT])] if rests else []
            await _until_either_ends(ws, follower.follow(sub), *prices)
        await ws.close(code=WSCloseCode.OK)


async def _stream_order(request: web.Request, ws: web.WebSocketResponse) -> None:
    try:
        order_id = parse_order_id(request.match_info["orderId"])
        since = parse_int_param(request.query.get("since"), "since", default=0, low=0)
    except ApiError as exc:
        await _close_with_error(ws, exc.code, exc.message, CLOSE_BAD_REQUEST, exc.details)
        return
    await _relay_order(request, ws, order_id, since)


async def _stream_wallet(request: web.Request, ws: web.WebSocketResponse) -> None:
    try:
        wallet = parse_wallet(request.query.get("wallet", ""))
    except ApiError as exc:
        await _close_with_error(ws, exc.code, exc.message, CLOSE_BAD_REQUEST, exc.details)
        return

    with request.app[HUB].subscribe_wallet(wallet) as sub:

        async def forward() -> None:
            while True:
                await ws.send_str((await sub.get()).text)

        await _until_either_ends(ws, forward())
    await ws.close(code=WSCloseCode.OK)


async def _execute_order(request: web.Request, ws: web.WebSocketResponse) -> None:
    try:
        async with asyncio.timeout(FIRST_MESSAGE_TIMEOUT_S):
            msg = await ws.receive()
    except TimeoutError:
        await _close_with_error(
            ws,
            "validation_error",
            f"no order received within {FIRST_MESSAGE_TIMEOUT_S:g} s",
            CLOSE_BAD_REQUEST,
        )
        return
    if msg.type != WSMsgType.TEXT:
        if msg.type not in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            await _close_with_error(
                ws,
                "invalid_json",
                "the first message must be a JSON text message",
                CLOSE_BAD_REQUEST,
            )
        return
    try:
        new = parse_order(
            parse_json(msg.data.encode()),
            max_input_amount=request.app[SETTINGS].max_input_amount,
        )
    except ApiError as exc:
        await _close_with_error(ws, exc.code, exc.message, CLOSE_BAD_REQUEST, exc.details)
        return
    try:
        order = (await request.app[ORDERS].place(new, execute=True)).order
    except (RateLimited, ClientOrderIdInUse) as exc:
        refusal = from_domain_error(exc)
        await _close_with_error(
            ws, refusal.code, refusal.message, 4000 + refusal.status, fields=refusal.fields
        )
        return
    await ws.send_json({"type": "accepted", "order": order_json(order)})
    await _relay_order(request, ws, order.id, 0)


Session = Callable[[web.Request, web.WebSocketResponse], Awaitable[None]]


async def _serve_socket(request: web.Request, session: Session) -> web.WebSocketResponse:
    """What every socket shares: the per-client cap, heartbeats, the registry of open
    sockets for shutdown, and how a slow client or a dependency outage ends it."""
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(heartbeat=settings.ws_heartbeat_s)
    if not ws.can_prepare(request).ok:
        raise validation_error([FieldError("Upgrade", "this route is a WebSocket")])
    client = client_of(request)
    per_client = request.app[WS_CLIENTS]
    if per_client[client] >= settings.ws_max_per_client:
        raise ApiError(
            429,
            "rate_limited",
            f"at most {settings.ws_max_per_client} WebSockets per client address",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    per_client[client] += 1
    try:
        await ws.prepare(request)
        request.app[WEBSOCKETS].add(ws)
        await session(request, ws)
    except ConnectionResetError:
        log.info("%s: the client went away mid-send", request.path)
    except SubscriberDropped:
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow; reconnect")
    except DEPENDENCY_ERRORS as exc:
        log.warning("%s: dependency unavailable: %r", request.path, exc)
        await _close_with_error(
            ws, "unavailable", "a dependency is unavailable", WSCloseCode.TRY_AGAIN_LATER
        )
    finally:
        request.app[WEBSOCKETS].discard(ws)
        per_client[client] -= 1
        if not per_client[client]:
            del per_client[client]
    return ws


async def order_socket(request: web.Request) -> web.WebSocketResponse:
    """/ws/orders/{orderId}?since=N"""
    return await _serve_socket(request, _stream_order)


async def wallet_socket(request: web.Request) -> web.WebSocketResponse:
    """/ws/orders?wallet=W: live status messages of every order of the wallet."""
    return await _serve_socket(request, _stream_wallet)


async def execute_socket(request: web.Request) -> web.WebSocketResponse:
    """/api/orders/execute (GET with Upgrade): an order in, its statuses out."""
    return await _serve_socket(request, _execute_order)
