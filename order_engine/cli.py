"""`order-engine serve [--processes N]` and `order-engine migrate`."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys

import attrs
import uvloop
from aiohttp import web

from order_engine.app import create_app
from order_engine.config import ConfigError, Settings, load_settings
from order_engine.embedded import EmbeddedUnavailable, embedded_services
from order_engine.logs import configure_logging
from order_engine.migrations import migrate
from order_engine.processes import run_processes

log = logging.getLogger("order_engine")


async def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Run until SIGTERM or SIGINT, then shut down in order: stop accepting connections,
    close sockets (1001), let workers finish up to the deadline, close pools."""
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    runner = web.AppRunner(create_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
    await site.start()
    log.info("order engine listening on http://%s:%s", settings.host, settings.port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="order-engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser(
        "serve", help="apply migrations, then run the API and the workers"
    )
    serve_command.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="engine processes sharing the port (SO_REUSEPORT), restarted if one dies",
    )
    commands.add_parser("migrate", help="apply pending SQL migrations and exit")
    args = parser.parse_args(argv)

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
    if args.command == "serve" and args.processes < 1:
        parser.error("--processes must be 1 or more")
    try:
        with embedded_services(settings) as settings:
            if args.command == "migrate":
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    applied = runner.run(migrate(settings.database_url))
                done = ", ".join(applied) or "none pending"
                print(f"applied {len(applied)} migration(s): {done}")
            elif args.processes == 1:
                _serve_in_this_process(settings)
            else:
                return run_processes(args.processes, functools.partial(_child, settings))
    except EmbeddedUnavailable as exc:
        print(f"order-engine: {exc}", file=sys.stderr)
        return 2
    return 0


def _serve_in_this_process(settings: Settings, *, reuse_port: bool = False) -> int:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, reuse_port=reuse_port))
    return 0


def _child(settings: Settings, index: int) -> int:
    """One of several engine processes: its own consumer name if one was set."""
    if settings.worker_id:
        settings = attrs.evolve(settings, worker_id=f"{settings.worker_id}-{index}")
    return _serve_in_this_process(settings, reuse_port=True)
