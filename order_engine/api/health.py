"""Probes: GET /livez (the process answers), GET /readyz (its dependencies answer too),
and GET /health, which is /readyz under the name the API contract gives it."""

from __future__ import annotations

from aiohttp import web

from order_engine.api.appkeys import HEALTH, WEBSOCKETS
from order_engine.api.errors import RETRY_AFTER_S


async def livez(request: web.Request) -> web.Response:
    """Answers as long as the event loop does: a dependency outage is no reason to
    restart the process, which would only drop its sockets and in-flight orders."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when every check passes, else 503 naming each check that failed."""
    report = await request.app[HEALTH].check()
    body: dict[str, object] = {"status": "ok" if report.ok else "degraded"}
    body.update(report.checks)
    body.update(report.figures)
    body.update(
        {
            "queueDepth": report.queue_depth,
            "inFlight": report.in_flight,
            "websockets": len(request.app[WEBSOCKETS]),
        }
    )
    if report.ok:
        return web.json_response(body)
    return web.json_response(body, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
