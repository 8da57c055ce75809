"""`order-engine serve`, `migrate`, `dev` and `settings-docs`."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import uvloop
from aiohttp import web

from order_engine.api.access import AccessLogger
from order_engine.api.connections import listen
from order_engine.app import create_app
from order_engine.config import ConfigError, Settings, load_settings, write_settings_docs
from order_engine.embedded import EmbeddedUnavailable, embedded_services
from order_engine.logs import ACCESS_LOGGER, configure_logging
from order_engine.memory import tune_collector, use_c_allocator
from order_engine.migrations import migrate
from order_engine.processes import run_processes

log = logging.getLogger("order_engine")


async def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Run until SIGTERM or SIGINT, then shut down in order: stop accepting connections,
    close sockets (1001), let workers finish up to the deadline, close pools."""
    applied = await migrate(settings.database_url)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    runner = web.AppRunner(
        create_app(settings),
        handle_signals=False,
        access_log_class=AccessLogger,
        access_log=logging.getLogger(ACCESS_LOGGER),
        keepalive_timeout=settings.keepalive_timeout_s,
    )
    await runner.setup()
    listener = await listen(runner, settings, reuse_port=reuse_port)
    tune_collector()
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


def dev(settings: Settings) -> int:
    """`adev runserver` on the dev factory, which it restarts whenever the code changes;
    the embedded servers, when they stand in, are started here once, not per restart."""
    adev = Path(sys.executable).with_name("adev")
    if not adev.exists():
        print("order-engine: dev needs aiohttp-devtools (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    package = Path(__file__).resolve().parent
    command = [
        str(adev),
        "runserver",
        str(package / "devserver.py"),
        "--app-factory",
        "create_dev_app",
        "--root",
        str(package),
        "--port",
        str(settings.port),
        "--no-livereload",
    ]
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        # adev had the Ctrl-C too and stops by itself; the servers stop on the way out.
        return 0


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
    commands.add_parser("dev", help="serve under aiohttp-devtools, restarting on code changes")
    settings_docs = commands.add_parser(
        "settings-docs", help="write .env.example and docs/configuration.md's settings table"
    )
    settings_docs.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    if args.command == "settings-docs":
        write_settings_docs(args.root)
        return 0
    if args.command == "serve":
        use_c_allocator(sys.argv[1:] if argv is None else argv)

    configure_logging(json_lines=False)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"order-engine: {exc}", file=sys.stderr)
        return 2
    configure_logging(json_lines=settings.json_logs, level=settings.log_level)

    if args.command == "migrate":
        # Migrating needs only PostgreSQL.
        settings = attrs.evolve(settings, embedded_redis=False)
    if args.command == "serve" and args.processes < 1:
        parser.error("--processes must be 1 or more")
    try:
        with embedded_services(settings) as settings:
            if args.command == "dev":
                return dev(settings)
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
