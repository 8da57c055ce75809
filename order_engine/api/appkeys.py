"""Typed keys for what the application holds: one place, so handlers and app agree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from order_engine.api.health_service import HealthCheck
from order_engine.api.orders_service import OrderService
from order_engine.chain.client import ChainClient
from order_engine.chain.model import SlotSummary
from order_engine.config import Settings
from order_engine.engine.reconciler import Reconciler
from order_engine.engine.triggers import TriggerWatcher
from order_engine.engine.worker import WorkerPool
from order_engine.hub import Hub
from order_engine.metrics import Metrics
from order_engine.queue import OrderQueue
from order_engine.routing.router import Router
from order_engine.store.idempotency import IdempotencyStore

SETTINGS = web.AppKey("settings", Settings)
DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
HUB = web.AppKey("hub", Hub)
QUEUE = web.AppKey("queue", OrderQueue)
ORDERS = web.AppKey("orders", OrderService)
WORKERS = web.AppKey("workers", WorkerPool)
ROUTER = web.AppKey("router", Router)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyStore)
METRICS = web.AppKey("metrics", Metrics)
RECONCILER = web.AppKey("reconciler", Reconciler)
HEALTH = web.AppKey("health", HealthCheck)
CHAIN_CLIENT = web.AppKey("chain_client", ChainClient)
# Told of every slot this process produces (while it leads the chain), after its commit.
SLOT_LISTENERS = web.AppKey("slot_listeners", list[Callable[[SlotSummary], None]])
TRIGGERS = web.AppKey("triggers", TriggerWatcher)
# This process's name: its consumer in the queue's group, and the producer of its slots.
PROCESS_NAME = web.AppKey("process_name", str)
# Open sockets, so that shutdown can close them; each handler removes its own.
WEBSOCKETS = web.AppKey("websockets", set[web.WebSocketResponse])
# Open sockets per client address, for the WS_MAX_PER_CLIENT cap.
WS_CLIENTS = web.AppKey("ws_clients", Counter[str])
