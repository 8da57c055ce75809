"""Fixtures of the integration tests that go past the API to the store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from order_engine.store.orders import OrderStore, create_pool


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[OrderStore]:
    """A store on the test's database, with room for tests that race many connections."""
    pool = await create_pool(db_url, min_size=1, max_size=25, command_timeout=10)
    yield OrderStore(pool)
    await pool.close()
