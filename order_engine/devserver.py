"""The application as `adev runserver` loads it for `order-engine dev` (`make dev`):
restarted on every change to the code, on the servers the parent process started."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from order_engine.app import create_app
from order_engine.config import load_settings
from order_engine.logs import configure_logging
from order_engine.migrations import migrate


def create_dev_app() -> web.Application:
    settings = load_settings()
    configure_logging(json_lines=settings.json_logs, level=settings.log_level)
    app = create_app(settings)

    async def migrated(app: web.Application) -> AsyncIterator[None]:
        await migrate(settings.database_url)
        yield

    # First, so that the schema is there before any pool or worker uses it.
    app.cleanup_ctx.insert(0, migrated)
    return app
