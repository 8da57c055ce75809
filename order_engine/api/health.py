"""GET /health: 200 when Postgres and Redis answer, 503 naming the one that does not."""

from __future__ import annotations

from aiohttp import web

from order_engine.api.errors import RETRY_AFTER_S
from order_engine.appkeys import HEALTH, WEBSOCKETS


async def health(request: web.Request) -> web.Response:
    report = await request.app[HEALTH].check()
    body = {
        "status": "ok" if report.ok else "degraded",
        "postgres": "ok" if report.postgres else "down",
        "redis": "ok" if report.redis else "down",
        "chain": "ok" if report.chain else "stalled",
        "chainSlot": report.chain_slot,
        "queueDepth": report.queue_depth,
        "inFlight": report.in_flight,
        "websockets": len(request.app[WEBSOCKETS]),
    }
    if report.ok:
        return web.json_response(body)
    return web.json_response(body, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
