"""GET /metrics and GET /api/stats, and the timing of every HTTP response."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from order_engine.api.access import STARTED_KEY, route_template
from order_engine.api.appkeys import METRICS, QUEUE, WEBSOCKETS, WORKERS
from order_engine.formats import timestamp_str

log = logging.getLogger(__name__)

DEPTH_TIMEOUT_S = 1.0


async def time_response(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the time from the request's arrival to its response's head,
    by method, route and status; no middleware frame is kept while a socket lasts."""
    started = request.get(STARTED_KEY)
    # A socket lasts as long as its client stays: not a request latency.
    if started is None or isinstance(response, web.WebSocketResponse):
        return
    request.app[METRICS].http_request(
        request.method, route_template(request), response.status, time.perf_counter() - started
    )


async def _count(what: str, probe: Awaitable[int]) -> int | None:
    """A number Redis keeps, or None when Redis does not answer in time."""
    try:
        return await asyncio.wait_for(probe, DEPTH_TIMEOUT_S)
    except Exception as exc:
        log.warning("metrics: %s unknown: %r", what, exc)
        return None


async def metrics(request: web.Request) -> web.Response:
    queue = request.app[QUEUE]
    depth, retries = await asyncio.gather(
        _count("queue depth", queue.depth()),
        _count("retries scheduled", queue.retries_scheduled()),
    )
    body = request.app[METRICS].exposition(
        queue_depth=depth,
        retries_scheduled=retries,
        in_flight=request.app[WORKERS].in_flight,
        websockets=len(request.app[WEBSOCKETS]),
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def stats(request: web.Request) -> web.Response:
    """GET /api/stats: this process's orders a second and accept -> confirmed latency over
    the last minute, as JSON a browser can chart without parsing Prometheus text."""
    recent = request.app[METRICS].recent
    return web.json_response(
        {
            "windowS": recent.window_s,
            "seconds": [
                {
                    "at": timestamp_str(datetime.fromtimestamp(s.at, UTC)),
                    "accepted": s.accepted,
                    "confirmed": s.confirmed,
                    "failed": s.failed,
                    "latencyP50Ms": s.percentile_ms(0.5),
                    "latencyP90Ms": s.percentile_ms(0.9),
                }
                for s in recent.series()
            ],
        }
    )
