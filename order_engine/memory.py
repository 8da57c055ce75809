"""Giving memory back to the system once a crowd of connections has left, and a cyclic
garbage collector tuned for a server that allocates as fast as it serves.

CPython's own allocator (pymalloc) keeps a 1 MiB arena for as long as one object in it
lives, and the few objects that outlive a crowd of sockets end up spread over every
arena the sockets used: after 10,000 sockets closed, their memory stayed with the
process. `order-engine serve` therefore runs on the C allocator (PYTHONMALLOC=malloc),
whose free pages glibc hands back on malloc_trim(), called here after sockets closed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

# Allocations of tracked objects between two young collections (CPython's default is
# 700), then how many young and middle collections make one of the next generation. A
# young pass walks every survivor since the last, most of the orders in flight (at
# 10,000: a 40-60 ms pause every 2 s at 500 orders/s; design.md).
COLLECTOR_THRESHOLDS = (100_000, 10, 10)

# Sockets that must have closed, since the last trim, before the next one.
TRIM_AFTER_CLOSED = 100
TRIM_INTERVAL_S = 5.0


def use_c_allocator(argv: Sequence[str]) -> None:
    """Run this command again, in this process, on the C allocator, unless PYTHONMALLOC
    is set already (to anything: an operator's choice wins)."""
    if "PYTHONMALLOC" in os.environ or sys.platform != "linux" or not sys.executable:
        return
    os.execve(
        sys.executable,
        [sys.executable, "-m", "order_engine", *argv],
        {**os.environ, "PYTHONMALLOC": "malloc"},
    )


def tune_collector() -> None:
    """Called once the server is up. Everything startup made (modules, schemas, pools)
    lives as long as the process, so it is frozen out of every collection; and most of
    an order's objects die by reference counting within a few steps, so young
    collections, each of which walks what survived since the last, can be rare."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
    return trim


async def trim_after_sockets_close(
    open_sockets: Callable[[], int], interval_s: float = TRIM_INTERVAL_S
) -> None:
    """Every `interval_s`, give free heap pages back if many sockets closed since the last
    look; only glibc can (elsewhere this returns at once)."""
    trim = _malloc_trim()
    if trim is None:
        return
    peak = open_sockets()
    while True:
        await asyncio.sleep(interval_s)
        now = open_sockets()
        if peak - now >= TRIM_AFTER_CLOSED:
            # A closed connection's objects hold one another in cycles, which only the
            # collector frees; nothing would prompt it while the process stays quiet.
            gc.collect()
            trim(0)
            log.debug("gave free memory back after %d sockets closed", peak - now)
            peak = now
        else:
            peak = max(peak, now)
