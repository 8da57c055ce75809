"""The one error shape of the API, and the middleware that gives every failure that shape."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import attrs
from aiohttp import web

from order_engine.api.appkeys import SETTINGS
from order_engine.api.ratelimit import ratelimit_headers
from order_engine.domain.errors import (
    ClientOrderIdInUse,
    DomainError,
    KeyInProgress,
    KeyReused,
    OrderNotFound,
    PoolExists,
    RateLimited,
    StatusConflict,
)
from order_engine.outage import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5


@attrs.frozen
class FieldError:
    field: str
    message: str


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = tuple(details)
        self.headers = headers or {}
        self.fields = fields or {}
        """More keys of the error object, e.g. the orderId a clientOrderId names."""


def validation_error(details: Sequence[FieldError]) -> ApiError:
    summary = "; ".join(f"{d.field}: {d.message}" for d in details)
    return ApiError(400, "validation_error", f"invalid request: {summary}", details)


def error_body(
    code: str,
    message: str,
    details: Sequence[FieldError] = (),
    fields: dict[str, str] | None = None,
) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if details:
        error["details"] = [{"field": d.field, "message": d.message} for d in details]
    error.update(fields or {})
    return {"error": error}


def error_response(exc: ApiError) -> web.Response:
    return web.json_response(
        error_body(exc.code, exc.message, exc.details, exc.fields),
        status=exc.status,
        headers=exc.headers,
    )


_HTTP_CODES = {
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "method not allowed on this route"),
    413: ("payload_too_large", "request body is over the size limit"),
}


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    code, message = _HTTP_CODES.get(exc.status, (exc.reason.lower().replace(" ", "_"), exc.reason))
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return ApiError(exc.status, code, message, headers=headers)


# Every domain error the API can meet, with the status and code it answers.
DOMAIN_ERRORS: dict[type[DomainError], tuple[int, str]] = {
    OrderNotFound: (404, "order_not_found"),
    StatusConflict: (409, "status_conflict"),
    ClientOrderIdInUse: (409, "duplicate_client_order_id"),
    KeyInProgress: (409, "idempotency_in_progress"),
    PoolExists: (409, "pool_exists"),
    KeyReused: (422, "idempotency_key_reused"),
    RateLimited: (429, "rate_limited"),
}


def from_domain_error(exc: DomainError) -> ApiError:
    status, code = DOMAIN_ERRORS[type(exc)]
    headers = {} if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, RateLimited):
        headers.update(ratelimit_headers(exc.quotas))
    fields = {"orderId": str(exc.order_id)} if isinstance(exc, ClientOrderIdInUse) else None
    return ApiError(status, code, exc.message, headers=headers, fields=fields)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

JSON_CONTENT_TYPE = "application/json"
UTF8_NAMES = ("utf-8", "utf8")


@web.middleware
def body_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    # Without a body (every WebSocket) the handler's awaitable is returned as it is, so
    # that this middleware keeps no frame for as long as a socket lasts. A body that came
    # whole with its head (most do) has nothing left to time.
    if check_body(request) and not request.content.is_eof():
        return _with_body(request, handler)
    return handler(request)


async def _with_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the body within BODY_TIMEOUT_S, so that a client sending it a byte at a time
    cannot hold a handler; handlers get it from aiohttp's cache."""
    timeout = request.app[SETTINGS].body_timeout_s
    try:
        async with asyncio.timeout(timeout):
            await request.read()
    except TimeoutError:
        raise ApiError(
            408, "request_timeout", f"the body did not arrive within {timeout:g} s"
        ) from None
    return await handler(request)


def check_body(request: web.Request) -> bool:
    """Refuse a body that is too large or not UTF-8 JSON before any handler reads it;
    True when there is a body to read.

    A request without a body (e.g. POST /api/orders/{orderId}/cancel) needs no content
    type; the size is checked again by aiohttp while the body is read, for chunked bodies.
    JSON is UTF-8 (RFC 8259): a charset parameter may only say so. An unknown route or
    method is left to its 404 or 405.
    """
    if request.match_info.http_exception is not None or not request.body_exists:
        return False
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"request body is over the {limit}-byte limit")
    if request.content_type != JSON_CONTENT_TYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected Content-Type {JSON_CONTENT_TYPE}, got {request.content_type or 'none'}",
        )
    charset = request.charset
    if charset is not None and charset.lower() not in UTF8_NAMES:
        raise ApiError(
            415, "unsupported_media_type", f"JSON must be UTF-8; charset {charset} is refused"
        )
    return True


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except DomainError as exc:
        return error_response(from_domain_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc))
    except DEPENDENCY_ERRORS as exc:
        log.warning("%s %s: dependency unavailable: %r", request.method, request.path, exc)
        return error_response(
            ApiError(
                503,
                "unavailable",
                "a dependency of the service is unavailable; try again shortly",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        )
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(ApiError(500, "internal_error", "internal error"))
