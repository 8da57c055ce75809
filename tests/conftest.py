"""Real Postgres and Redis for every test, isolated per test.

The schema is migrated once per session into a template database; each test gets its own
database copied from it (milliseconds) and its own Redis key prefix, and both are removed
afterwards. TEST_DATABASE_URL (a database to connect to for CREATE DATABASE) and
TEST_REDIS_URL name the servers; for each one unset, a private server is started for the
session under `.order-engine/test/` (order_engine/embedded.py) and stopped at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from order_engine.app import create_app
from order_engine.config import Settings
from order_engine.embedded import embedded_services
from order_engine.migrations import apply_migrations

# Filled in by pytest_configure, before any test module is collected.
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
RUN_ID = uuid.uuid4().hex[:10]
EMBEDDED_DATA_DIR = Path(__file__).resolve().parent.parent / ".order-engine" / "test"
_embedded = contextlib.ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    global ADMIN_URL, REDIS_URL
    if ADMIN_URL and REDIS_URL:
        return
    wanted = Settings(
        database_url=ADMIN_URL,
        redis_url=REDIS_URL,
        embedded_postgres=not ADMIN_URL,
        embedded_redis=not REDIS_URL,
        data_dir=EMBEDDED_DATA_DIR,
    )
    started = _embedded.enter_context(embedded_services(wanted))
    ADMIN_URL = ADMIN_URL or started.database_url.rpartition("/")[0] + "/postgres"
    REDIS_URL = started.redis_url


def pytest_unconfigure(config: pytest.Config) -> None:
    _embedded.close()


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    name = f"oe_test_{RUN_ID}_tpl"

    async def build() -> None:
        await _admin(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(database_url(name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


MakeDatabase = Callable[[], Awaitable[str]]


@pytest.fixture
async def make_database(template_db: str) -> AsyncIterator[MakeDatabase]:
    """Makes migrated databases of the test's own (one chain each), dropped at its end."""
    made: list[str] = []

    async def make() -> str:
        name = f"oe_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
        await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        made.append(name)
        return database_url(name)

    yield make
    for name in made:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db_url(make_database: MakeDatabase) -> str:
    return await make_database()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, for assertions on what was stored."""
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"oe-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def settings(db_url: str, redis_prefix: str) -> Settings:
    """Fast, deterministic DEXs: no delays, no failures. Tests evolve what they need."""
    return Settings(
        database_url=db_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        worker_concurrency=50,
        db_pool_max=10,
        mock_dex_quote_delay_ms=0,
        mock_dex_execution_delay_ms=0,
        mock_dex_failure_rate=0.0,
        mock_dex_seed=7,
        price_walk_interval_ms=0,
        chain_slot_ms=10,
        shutdown_timeout_s=5.0,
        ws_heartbeat_s=5.0,
        retry_base_ms=10,
        retry_max_ms=50,
    )


AppClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def start_app(
    settings: Settings,
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> AppClient:
    """Start the real application (workers included) with the test settings, changed by
    any keyword given: `await start_app(mock_dex_failure_rate=1.0)`.

    `settings` comes first so that its Redis prefix is set up before the client and torn
    down after it: an app still stopping would otherwise write keys the prefix's
    cleanup had already removed."""

    async def start(**changes: Any) -> TestClient[web.Request, web.Application]:
        return await aiohttp_client(create_app(attrs.evolve(settings, **changes)))

    return start


@pytest.fixture
async def client(start_app: AppClient) -> TestClient[web.Request, web.Application]:
    return await start_app()
