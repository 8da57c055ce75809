"""The one error shape of the API, and the middleware that gives every failure that shape."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import attrs
from aiohttp import web

from order_engine.outage import DEPENDENCY_ERRORS
from order_engine.store import OrderNotFound, StatusConflict

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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = tuple(details)
        self.headers = headers or {}


def validation_error(details: Sequence[FieldError]) -> ApiError:
    summary = "; ".join(f"{d.field}: {d.message}" for d in details)
    return ApiError(400, "validation_error", f"invalid request: {summary}", details)


def error_body(code: str, message: str, details: Sequence[FieldError] = ()) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if details:
        error["details"] = [{"field": d.field, "message": d.message} for d in details]
    return {"error": error}


def error_response(exc: ApiError) -> web.Response:
    return web.json_response(
        error_body(exc.code, exc.message, exc.details), status=exc.status, headers=exc.headers
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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except OrderNotFound as exc:
        return error_response(ApiError(404, "order_not_found", str(exc)))
    except StatusConflict as exc:
        return error_response(ApiError(409, "status_conflict", str(exc)))
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
