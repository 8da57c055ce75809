"""`order-engine serve` and `order-engine migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import attrs
import uvloop
from aiohttp import web

from order_engine.api.connections import listen
from order_engine.app import create_app
from order_engine.config import ConfigError, Settings, load_settings
from order_engine.embedded import EmbeddedUnavailable, embedded_services
from order_engine.logs import configure_logging
from order_engine.memory import use_c_allocator
from order_engine.migrations import migrate

log = logging.getLogger("order_engine")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down in order: stop accepting connections,
    close sockets (1001), let workers finish up to the deadline, close pools."""
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    runner = web.AppRunner(
        create_app(settings),
        handle_signals=False,
        access_log=None,
        keepalive_timeout=settings.keepalive_timeout_s,
    )
    await runner.setup()
    listener = await listen(runner, settings)
    log.info("order engine listening on http://%s:%s", settings.host, settings.port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        listener.close()
        await runner.cleanup()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="order-engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="apply migrations, then run the API and the workers")
    commands.add_parser("migrate", help="apply pending SQL migrations and exit")
    args = parser.parse_args(argv)
    if args.command == "serve":
        use_c_allocator(sys.argv[1:] if argv is None else argv)

    configure_logging(json_lines=False)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"order-engine: {exc}", file=sys.stderr)
        return 2
    # One JSON object a line where logs are collected; readable lines at a terminal.
    configure_logging(json_lines=settings.is_production, level=settings.log_level)

    if args.command == "migrate":
        # Migrating needs only PostgreSQL.
        settings = attrs.evolve(settings, embedded_redis=False)
    try:
        with (
            embedded_services(settings) as settings,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            if args.command == "migrate":
                applied = runner.run(migrate(settings.database_url))
                done = ", ".join(applied) or "none pending"
                print(f"applied {len(applied)} migration(s): {done}")
            else:
                runner.run(serve(settings))
    except EmbeddedUnavailable as exc:
        print(f"order-engine: {exc}", file=sys.stderr)
        return 2
    return 0
