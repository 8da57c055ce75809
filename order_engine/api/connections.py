"""Limits below HTTP, on the listening socket: how many connections are open at once, and
how long a new connection may take to send its first request head.

aiohttp has neither (its keep-alive timer, KEEPALIVE_TIMEOUT_S, is what bounds an idle
connection and a slow later request), so every connection is accepted through a thin
protocol that counts it and times its head before handing the bytes to aiohttp's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections.abc import Callable
from typing import cast

from aiohttp import web

from order_engine.api.errors import RETRY_AFTER_S, error_body
from order_engine.config import Settings

log = logging.getLogger(__name__)

_END_OF_HEAD = b"\r\n\r\n"
# Descriptors besides connections: pools, Redis, logs, the embedded servers' pipes.
_SPARE_FILES = 256


def _raw_response(status: str, code: str, message: str, extra: str = "") -> bytes:
    """A complete HTTP response in the API's error shape, for a connection that is closed
    before aiohttp has a request to answer."""
    body = json.dumps(error_body(code, message)).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


class ConnectionLimits:
    """What every connection of one listener shares: the count and the two limits."""

    def __init__(self, *, max_connections: int, header_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.open = 0
        self.refused = _raw_response(
            "503 Service Unavailable",
            "unavailable",
            f"the server holds its maximum of {max_connections} connections",
            f"Retry-After: {RETRY_AFTER_S}\r\n",
        )
        self.too_slow = _raw_response(
            "408 Request Timeout",
            "request_timeout",
            f"the request head did not arrive within {header_timeout_s:g} s",
        )


class _Guarded(asyncio.Protocol):
    """One connection: counted while open, refused over the limit, closed (408) if its
    first request head is not complete in time; otherwise aiohttp's protocol sees every
    event as if it were alone."""

    __slots__ = ("_inner", "_limits", "_make", "_tail", "_timer", "_transport")

    def __init__(self, limits: ConnectionLimits, make: Callable[[], asyncio.Protocol]) -> None:
        self._limits = limits
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but act as one.
        transport = cast(asyncio.Transport, transport)
        limits = self._limits
        if limits.open >= limits.max_connections:
            transport.write(limits.refused)
            transport.close()
            return
        limits.open += 1
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(
            limits.header_timeout_s, self._head_too_slow
        )
        self._inner = self._make()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _END_OF_HEAD in seen:
                self._timer.cancel()
                self._timer = None
                self._tail = b""
            else:
                self._tail = seen[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._limits.open -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inner, self._inner = self._inner, None
        inner.connection_lost(exc)

    def _head_too_slow(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._limits.too_slow)
            self._transport.close()


def _allow_open_files(wanted: int) -> None:
    """Raise the soft limit on open files to `wanted` if the hard limit lets it, so that
    MAX_CONNECTIONS is what limits connections; say so when it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        if raised < wanted:
            log.warning(
                "open files are limited to %d: fewer connections than MAX_CONNECTIONS fit",
                raised,
            )


async def listen(
    runner: web.AppRunner, settings: Settings, *, reuse_port: bool = False
) -> asyncio.AbstractServer:
    """Listen on HOST:PORT for `runner`'s application, within the connection limits (per
    process, with `reuse_port` when several share the port).

    Close the returned server (stop accepting) before `runner.cleanup()`, which closes
    the connections themselves."""
    _allow_open_files(settings.max_connections + _SPARE_FILES)
    server = runner.server
    assert server is not None, "runner.setup() first"
    limits = ConnectionLimits(
        max_connections=settings.max_connections, header_timeout_s=settings.header_timeout_s
    )
    return await asyncio.get_running_loop().create_server(
        lambda: _Guarded(limits, server),
        settings.host,
        settings.port,
        # aiohttp's own sites listen with a backlog of 128; asyncio's default is 100.
        backlog=128,
        reuse_port=reuse_port or None,
    )
