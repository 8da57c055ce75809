"""Who a request is and what became of it: its id, its client, its route, and the one
access log line it leaves.

Every request gets an id: the caller's `X-Request-ID` when it is a sane one, or a new
one; it is bound to every log line written on the request's behalf and returned in the
response's `X-Request-ID`. The client is the peer address, or, when the peer is one of
TRUSTED_PROXIES, the address its `X-Forwarded-For` names.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Awaitable
from random import getrandbits
from time import perf_counter

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger

from order_engine.api.appkeys import SETTINGS
from order_engine.api.errors import Handler
from order_engine.config import Networks
from order_engine.logs import ORDER_ID, REQUEST_ID

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

REQUEST_ID_KEY = web.RequestKey("request_id", str)
CLIENT_KEY = web.RequestKey("client", str)
# uvloop's clock, which aiohttp times requests with, counts whole milliseconds.
STARTED_KEY = web.RequestKey("started", float)


def _trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: list[str], trusted: Networks) -> str:
    """The client as the nearest untrusted hop: walking `X-Forwarded-For` from the right
    (the entry the nearest proxy appended) past every trusted proxy. Entries left of it
    were written by the client and prove nothing."""
    if peer is None or not trusted or not _trusted(peer, trusted):
        return peer or "unknown"
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",") if hop.strip()]
    nearest = peer
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return nearest
        nearest = hop
    return nearest


def client_of(request: web.BaseRequest) -> str:
    return request.get(CLIENT_KEY) or request.remote or "unknown"


def route_template(request: web.BaseRequest) -> str:
    """The route as declared (`/api/orders/{orderId}`), so that ids do not make labels."""
    match_info = getattr(request, "match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
def request_context_middleware(
    request: web.Request, handler: Handler
) -> Awaitable[web.StreamResponse]:
    request[STARTED_KEY] = perf_counter()
    raw_id = request.headers.get(REQUEST_ID_HEADER, "")
    # An id only has to tell requests apart, not be unguessable: the process's own
    # generator (reseeded in every forked child) spares a system call a request.
    request_id = raw_id if _SANE_REQUEST_ID.match(raw_id) else f"{getrandbits(128):032x}"
    request[REQUEST_ID_KEY] = request_id
    request[CLIENT_KEY] = client_address(
        request.remote,
        request.headers.getall(hdrs.X_FORWARDED_FOR, []),
        request.app[SETTINGS].trusted_proxies,
    )
    raw_order = request.match_info.get("orderId", "")
    # aiohttp runs every request in a task of its own, with a copy of the context: what
    # is bound here (and what a service binds later, such as a new order's id) lasts
    # until the access line, written in that task, and needs no reset. The handler's
    # awaitable is returned as it is: no frame of this is kept while a socket lasts.
    REQUEST_ID.set(request_id)
    ORDER_ID.set(uuid.UUID(raw_order) if _UUID.match(raw_order) else None)
    return handler(request)


async def send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, WebSocket handshakes and errors included."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


class AccessLogger(AbstractAccessLogger):
    """One line a request, after its response is sent (for a WebSocket, when it closes)."""

    @property
    def enabled(self) -> bool:
        # aiohttp asks before it calls log(): at WARNING nothing of the line is built.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        started = request.get(STARTED_KEY)
        seconds = time if started is None else perf_counter() - started
        order_id = ORDER_ID.get()
        extra: dict[str, object] = {
            "method": request.method,
            "route": route_template(request),
            # The path without its query, which may hold an ?apiKey=.
            "path": request.path,
            "status": response.status,
            "latencyMs": round(seconds * 1000, 3),
            "client": client_of(request),
            "request_id": request.get(REQUEST_ID_KEY),
        }
        if order_id is not None:
            extra["order_id"] = str(order_id)
        self.logger.info(
            "%s %s %s %.1f ms",
            request.method,
            request.path,
            response.status,
            seconds * 1000,
            extra=extra,
        )
