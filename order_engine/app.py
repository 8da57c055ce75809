"""The application factory: routes, middleware, and one cleanup context per resource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import WSCloseCode, web

from order_engine.api.access import request_context_middleware, send_request_id
from order_engine.api.appkeys import (
    CHAIN_CLIENT,
    DB_POOL,
    HEALTH,
    HUB,
    IDEMPOTENCY,
    METRICS,
    ORDERS,
    PROCESS_NAME,
    QUEUE,
    RECONCILER,
    REDIS,
    ROUTER,
    SETTINGS,
    SLOT_LISTENERS,
    TRIGGERS,
    WEBSOCKETS,
    WORKERS,
    WS_CLIENTS,
)
from order_engine.api.auth import auth_middleware
from order_engine.api.errors import body_middleware, error_middleware
from order_engine.api.health_service import Check, HealthCheck, condition
from order_engine.api.idempotency import purge_periodically
from order_engine.api.metrics import time_response
from order_engine.api.orders_service import OrderService
from order_engine.api.ratelimit import SubmissionLimiter
from order_engine.api.routes import setup_routes
from order_engine.api.serialize import encode_event
from order_engine.chain.client import ChainClient
from order_engine.chain.ledger import Ledger
from order_engine.chain.market import genesis_pools
from order_engine.chain.model import SlotSummary
from order_engine.chain.slots import SlotConfig, SlotProducer
from order_engine.chain.venues import chain_venues
from order_engine.config import Settings
from order_engine.engine.execution import Executor
from order_engine.engine.locks import AdvisoryLocks
from order_engine.engine.reconciler import Reconciler
from order_engine.engine.retry import RetryPolicy
from order_engine.engine.triggers import Pass, TriggerWatcher
from order_engine.engine.worker import Recovery, WorkerPool
from order_engine.hub import Hub
from order_engine.leader import Leadership, Role
from order_engine.memory import trim_after_sockets_close
from order_engine.metrics import Metrics
from order_engine.queue import OrderQueue
from order_engine.routing.router import Router
from order_engine.store.idempotency import IdempotencyStore
from order_engine.store.orders import OrderStore, create_pool

log = logging.getLogger(__name__)

READ_BLOCK_MS = 500


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await create_pool(
        settings.database_url,
        min_size=min(settings.db_pool_min, settings.db_pool_max),
        max_size=settings.db_pool_max,
        command_timeout=settings.db_command_timeout_s,
    )
    app[DB_POOL] = pool
    yield
    await pool.close()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Blocking: under load, callers wait for a free connection instead of failing with
    # "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool_max,
        timeout=settings.redis_pool_timeout_s,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    )
    client = aioredis.Redis(connection_pool=pool)
    app[REDIS] = client
    yield
    await client.aclose()
    await pool.disconnect()


def slot_config(settings: Settings) -> SlotConfig:
    """The slot producer's settings; the walk's and launches' intervals in whole slots."""

    def every(interval_ms: float) -> int:
        return max(1, round(interval_ms / settings.chain_slot_ms)) if interval_ms > 0 else 0

    return SlotConfig(
        slot_s=settings.chain_slot_ms / 1000,
        execution_delay_s=settings.mock_dex_execution_delay_ms / 1000,
        failure_rate=settings.mock_dex_failure_rate,
        expiry_slots=settings.chain_tx_expiry_slots,
        max_transactions=settings.chain_slot_max_txs,
        walk_every=every(settings.price_walk_interval_ms),
        volatility=settings.price_walk_volatility_bps / 10_000,
        launch_every=every(settings.pool_launch_interval_s * 1000),
        seed=settings.mock_dex_seed,
    )


async def chain_ctx(app: web.Application) -> AsyncIterator[None]:
    """The shared chain as this process sees it, and its share in producing slots."""
    settings = app[SETTINGS]
    ledger = Ledger(app[DB_POOL])
    seed = settings.mock_dex_seed
    await ledger.genesis(genesis_pools(), random.getrandbits(62) if seed is None else seed)
    client = ChainClient(
        ledger,
        app[REDIS],
        f"{settings.redis_prefix}chain",
        slot_s=settings.chain_slot_ms / 1000,
        execution_delay_s=settings.mock_dex_execution_delay_ms / 1000,
        expiry_slots=settings.chain_tx_expiry_slots,
    )
    await client.start()
    app[CHAIN_CLIENT] = client
    listeners = app[SLOT_LISTENERS] = []

    def closed(summary: SlotSummary, seconds: float) -> None:
        app[METRICS].slot_closed(seconds, (o.status.value for o in summary.outcomes))
        for listener in listeners:
            listener(summary)

    leadership = Leadership(
        settings.database_url, Role.SLOT_PRODUCER, timeout_s=settings.db_command_timeout_s
    )
    producer = SlotProducer(
        app[DB_POOL],
        app[REDIS],
        f"{settings.redis_prefix}chain",
        leadership,
        slot_config(settings),
        name=app[PROCESS_NAME],
        on_summary=client.apply,
        on_closed=closed,
    )
    await producer.start()
    yield
    await producer.stop()
    await leadership.close()
    await client.stop()


async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub, the queue and the services built on them."""
    settings = app[SETTINGS]
    redis = app[REDIS]
    hub = Hub(
        redis,
        f"{settings.redis_prefix}events",
        buffer_size=settings.hub_buffer_size,
        encode=encode_event,
    )
    await hub.start()
    metrics = app[METRICS]
    store = OrderStore(
        app[DB_POOL],
        hub=hub,
        observer=metrics.transition,
        max_resting_per_wallet=settings.max_resting_per_wallet,
    )
    # The read loop's own connection: its socket timeout must outlast the blocking read.
    reader = aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        single_connection_client=True,
        socket_timeout=READ_BLOCK_MS / 1000 + 5,
        socket_connect_timeout=2,
    )
    queue = OrderQueue(
        redis, reader, stream=f"{settings.redis_prefix}orders", consumer=app[PROCESS_NAME]
    )
    app[HUB] = hub
    app[QUEUE] = queue
    limiter = SubmissionLimiter(
        redis,
        settings.redis_prefix,
        per_wallet_per_minute=settings.rate_limit_wallet_per_minute,
        global_per_second=settings.rate_limit_global_per_second,
    )
    app[ORDERS] = OrderService(store, queue, metrics, limiter)
    app[IDEMPOTENCY] = IdempotencyStore(app[DB_POOL])
    chain = app[CHAIN_CLIENT]
    venues = chain_venues(
        lambda: chain.market, quote_delay_s=settings.mock_dex_quote_delay_ms / 1000
    )
    router = Router(venues, quote_timeout_s=settings.quote_timeout_ms / 1000)
    app[ROUTER] = router
    retry = RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        base_s=settings.retry_base_ms / 1000,
        max_s=settings.retry_max_ms / 1000,
    )
    locks = AdvisoryLocks(settings.database_url, timeout_s=settings.db_command_timeout_s)
    workers = WorkerPool(
        queue,
        Executor(store, router, chain, retry=retry),
        locks,
        concurrency=settings.worker_concurrency,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        block_ms=READ_BLOCK_MS,
        recovery=Recovery(
            reclaim_idle_ms=settings.reclaim_idle_ms, max_deliveries=settings.max_deliveries
        ),
    )
    app[WORKERS] = workers

    def passed(result: Pass) -> None:
        metrics.trigger_pass(
            result.check_s, fired=result.fired, expired=result.expired, resting=result.resting
        )

    # It checks on the prices of the slot this process just produced, so with no quote
    # latency: that of an RPC node does not stand between a slot and its own producer.
    triggers = TriggerWatcher(
        store,
        queue,
        Router(
            chain_venues(lambda: chain.market, quote_delay_s=0),
            quote_timeout_s=settings.quote_timeout_ms / 1000,
        ),
        chain,
        idle_after_s=max(10 * settings.chain_slot_ms / 1000, 5.0),
        on_pass=passed,
        alone=lambda: not hub.relaying,
    )
    store.add_observer(triggers.order_changed)
    app[TRIGGERS] = triggers
    app[SLOT_LISTENERS].append(triggers.slot_closed)
    reconciler_lead = Leadership(
        settings.database_url, Role.RECONCILER, timeout_s=settings.db_command_timeout_s
    )
    app[RECONCILER] = Reconciler(
        store,
        queue,
        reconciler_lead,
        interval_s=settings.reconcile_interval_s,
        grace_s=settings.reconcile_grace_s,
    )
    app[HEALTH] = HealthCheck(
        [
            Check("postgres", store.ping),
            Check("redis", redis.ping),
            Check(
                "chain",
                condition(lambda: chain.current, "no slot of the shared chain reached us lately"),
                failed="stalled",
            ),
        ],
        queue,
        workers,
        figures={"chainSlot": lambda: chain.slot},
    )
    yield
    await hub.stop()
    await reader.aclose()
    await locks.close()
    await reconciler_lead.close()


async def idempotency_purge_ctx(app: web.Application) -> AsyncIterator[None]:
    interval_s = app[SETTINGS].idempotency_purge_interval_s
    if not interval_s:
        yield
        return
    purge = asyncio.create_task(purge_periodically(app[IDEMPOTENCY], interval_s))
    yield
    purge.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await purge


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Last in, so first out: workers stop before what they use is closed."""
    workers, reconciler, triggers = app[WORKERS], app[RECONCILER], app[TRIGGERS]
    await workers.start()
    await reconciler.start()
    await triggers.start()
    yield
    await triggers.stop()
    await reconciler.stop()
    await workers.stop()


async def memory_ctx(app: web.Application) -> AsyncIterator[None]:
    """Memory freed by closed sockets given back to the system (order_engine/memory.py)."""
    sockets = app[WEBSOCKETS]
    trimmer = asyncio.create_task(trim_after_sockets_close(lambda: len(sockets)))
    yield
    trimmer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await trimmer


async def close_websockets(app: web.Application) -> None:
    """On shutdown, tell every client to reconnect elsewhere (1001), all at once."""
    sockets = [ws for ws in app[WEBSOCKETS] if ws.prepared]
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down") for ws in sockets),
        return_exceptions=True,
    )


def create_app(settings: Settings) -> web.Application:
    # The request's id and client first, so that every line logged under it has them;
    # authentication inside the error middleware, so that a refusal has the error shape,
    # and before the body checks, so that a client without a key learns nothing else.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_context_middleware,
            error_middleware,
            auth_middleware,
            body_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[PROCESS_NAME] = (
        settings.worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    app[METRICS] = Metrics()
    app[WEBSOCKETS] = set()
    app[WS_CLIENTS] = Counter()
    app.cleanup_ctx.extend(
        [
            postgres_ctx,
            redis_ctx,
            chain_ctx,
            engine_ctx,
            idempotency_purge_ctx,
            memory_ctx,
            workers_ctx,
        ]
    )
    app.on_shutdown.append(close_websockets)
    app.on_response_prepare.append(send_request_id)
    app.on_response_prepare.append(time_response)
    setup_routes(app)
    return app
