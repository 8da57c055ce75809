"""The browser side: the dashboard at / and the API docs at /docs (Swagger UI) and /redoc.

Static files only: the dashboard is a framework-free ES module in static/, and the docs
pages load Swagger UI and Redoc from the openapi-ui-bundles package, so everything works
offline. None of these paths is under /api or /ws, so they stay open when API_KEYS is
set: the pages hold no data, and the dashboard asks for the key to send with its calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import openapi_ui_bundles
from aiohttp import web

STATIC = Path(__file__).parent / "static"


def _page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC / name

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page


def ui_routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", _page("index.html")),
        web.get("/docs", _page("swagger.html")),
        web.get("/redoc", _page("redoc.html")),
        web.static("/static", STATIC),
        web.static("/docs/assets", openapi_ui_bundles.swagger_ui.static_path),
        web.static("/redoc/assets", openapi_ui_bundles.redoc.static_path),
    ]
