"""Several engine processes on one port: a pre-forking parent that keeps N children.

The parent forks before any event loop, pool or socket exists in it (a forked loop or
connection would be shared by accident), and each child binds the port with
SO_REUSEPORT, so the kernel spreads connections between them. A child that dies is
started again; SIGTERM or SIGINT is passed on to every child, and the parent waits
for all of them to finish their shutdown.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

# A child that dies is replaced after this long, so that one failing at start-up (a bad
# setting, a dependency down) does not make the parent spin.
RESTART_DELAY_S = 1.0


def run_processes(count: int, child: Callable[[int], int]) -> int:
    """Run `child(index)` in `count` forked processes until SIGTERM or SIGINT; return 0
    once every child has exited after the signal."""
    children: dict[int, int] = {}
    stopping = False

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = child(index)
            finally:
                # Never return into the parent's code, nor run its exit handlers.
                os._exit(code)
        children[pid] = index
        log.info("started engine process %d (pid %d)", index, pid)

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(count):
        start(index)
    while children:
        pid, status = os.wait()
        if pid not in children:
            continue
        index = children.pop(pid)
        if stopping:
            log.info("engine process %d (pid %d) stopped", index, pid)
            continue
        log.error(
            "engine process %d (pid %d) died (%s); starting another",
            index,
            pid,
            _describe(status),
        )
        time.sleep(RESTART_DELAY_S)
        if not stopping:
            start(index)
    return 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
