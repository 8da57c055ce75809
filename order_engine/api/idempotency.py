"""The Idempotency-Key header on the order POSTs, as a wrapper around their handlers."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging

from aiohttp import web

from order_engine.api.appkeys import IDEMPOTENCY
from order_engine.api.errors import ApiError, FieldError, Handler, validation_error
from order_engine.api.schemas import parse_json
from order_engine.outage import DEPENDENCY_ERRORS
from order_engine.store.idempotency import IdempotencyStore

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


def parse_key(raw: str) -> str:
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in raw):
        raise validation_error(
            [FieldError(HEADER, f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")]
        )
    return raw


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Equal for the same order however its JSON is spaced or its keys ordered."""
    try:
        canonical = json.dumps(parse_json(body), sort_keys=True, default=str).encode()
    except ApiError:
        canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def idempotent(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        raw_key = request.headers.get(HEADER)
        if raw_key is None:
            return await handler(request)
        key = parse_key(raw_key)
        request_print = fingerprint(request.method, request.path, await request.read())
        service = request.app[IDEMPOTENCY]
        stored = await service.begin(key, request_print)
        if stored is not None:
            return web.Response(
                text=stored.body,
                status=stored.status,
                content_type="application/json",
                headers={REPLAYED_HEADER: "true"},
            )
        try:
            response = await handler(request)
        except BaseException:
            # Shielded: a client that disconnects must not leave the key held.
            await asyncio.shield(service.release(key, request_print))
            raise
        if (
            isinstance(response, web.Response)
            and isinstance(response.body, bytes)
            and 200 <= response.status < 300
        ):
            await service.finish(key, request_print, response.status, response.body.decode())
        else:
            await service.release(key, request_print)
        return response

    return wrapper


async def purge_periodically(store: IdempotencyStore, interval_s: float) -> None:
    """Delete expired keys now and every `interval_s`, until cancelled. Every process
    runs it: purges skip each other's rows, so together they do the work once."""
    while True:
        try:
            purged = await store.purge_expired()
        except DEPENDENCY_ERRORS as exc:
            log.warning("idempotency key purge failed: %r", exc)
        else:
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        await asyncio.sleep(interval_s)
