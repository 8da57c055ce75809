"""Idempotency-Key on both order POSTs, stored in the real Postgres."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from order_engine.api.idempotency import fingerprint
from order_engine.store.idempotency import IdempotencyStore
from tests.conftest import AppClient
from tests.failure.checks import poll
from tests.integration.test_api_errors import error_of
from tests.support import Client, follow_order, order_body

PATHS = [("/api/orders", 201), ("/api/orders/execute", 202)]


@pytest.mark.parametrize(("path", "status"), PATHS)
async def test_a_repeat_returns_the_first_response_and_makes_no_order(
    client: Client, db: asyncpg.Connection, path: str, status: int
) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = await client.post(path, json=order_body(), headers=headers)
    assert first.status == status, await first.text()
    first_body = await first.read()
    # The same order, spaced and ordered differently, is the same request.
    same = json.dumps(dict(reversed(order_body().items())), indent=2)
    for _ in range(2):
        again = await client.post(
            path, data=same, headers={**headers, "Content-Type": "application/json"}
        )
        assert again.status == status
        assert await again.read() == first_body
        assert again.headers["Idempotent-Replayed"] == "true"
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    if status == 202:
        await follow_order(client, json.loads(first_body)["orderId"])


@pytest.mark.parametrize(("path", "status"), PATHS)
async def test_a_different_body_under_the_key_is_422(
    client: Client, db: asyncpg.Connection, path: str, status: int
) -> None:
    headers = {"Idempotency-Key": "order-2"}
    assert (await client.post(path, json=order_body(), headers=headers)).status == status
    resp = await client.post(path, json=order_body(inputAmount="2"), headers=headers)
    await error_of(resp, 422, "idempotency_key_reused")
    # The same key on the other order route is a different request too.
    other = "/api/orders/execute" if path == "/api/orders" else "/api/orders"
    resp = await client.post(other, json=order_body(), headers=headers)
    await error_of(resp, 422, "idempotency_key_reused")
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_a_repeat_while_the_first_runs_is_409(client: Client, db: asyncpg.Connection) -> None:
    body = json.dumps(order_body()).encode()
    await db.execute(
        "INSERT INTO idempotency_keys (key, fingerprint, state, expires_at)"
        " VALUES ('busy', $1, 'running', now() + interval '1 day')",
        fingerprint("POST", "/api/orders", body),
    )
    resp = await client.post(
        "/api/orders",
        data=body,
        headers={"Idempotency-Key": "busy", "Content-Type": "application/json"},
    )
    await error_of(resp, 409, "idempotency_in_progress")
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


async def test_concurrent_repeats_make_one_order(client: Client, db: asyncpg.Connection) -> None:
    headers = {"Idempotency-Key": "race"}
    responses = await asyncio.gather(
        *(client.post("/api/orders", json=order_body(), headers=headers) for _ in range(10))
    )
    ids = set()
    for resp in responses:
        if resp.status == 201:
            ids.add((await resp.json())["orderId"])
        else:
            await error_of(resp, 409, "idempotency_in_progress")
    assert len(ids) == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_an_expired_key_makes_a_new_order(client: Client, db: asyncpg.Connection) -> None:
    headers = {"Idempotency-Key": "old"}
    first = await (await client.post("/api/orders", json=order_body(), headers=headers)).json()
    expires = await db.fetchval("SELECT expires_at - created_at FROM idempotency_keys")
    assert expires.total_seconds() == 24 * 3600
    await db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    resp = await client.post("/api/orders", json=order_body(inputAmount="3"), headers=headers)
    assert resp.status == 201
    assert (await resp.json())["orderId"] != first["orderId"]
    assert await db.fetchval("SELECT count(*) FROM orders") == 2


async def test_a_failed_request_gives_the_key_back(client: Client, db: asyncpg.Connection) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    resp = await client.post("/api/orders", json=order_body(inputAmount="0"), headers=headers)
    await error_of(resp, 400, "validation_error")
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    resp = await client.post("/api/orders", json=order_body(), headers=headers)
    assert resp.status == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "é"])
async def test_a_malformed_key_is_400(client: Client, db: asyncpg.Connection, key: str) -> None:
    resp = await client.post("/api/orders", json=order_body(), headers={"Idempotency-Key": key})
    error = await error_of(resp, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["Idempotency-Key"]
    assert await db.fetchval("SELECT count(*) FROM orders") == 0


async def _key(db: asyncpg.Connection, key: str, expires_in_s: float) -> None:
    await db.execute(
        "INSERT INTO idempotency_keys (key, fingerprint, state, response_status, response_body,"
        " expires_at) VALUES ($1, 'f', 'done', 201, '{}', now() + $2 * interval '1 second')",
        key,
        expires_in_s,
    )


async def test_the_purge_deletes_expired_keys_in_batches_and_keeps_live_ones(
    db: asyncpg.Connection, db_url: str
) -> None:
    for i in range(7):
        await _key(db, f"old-{i}", -60)
    await _key(db, "live", 3600)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    try:
        assert await IdempotencyStore(pool).purge_expired(batch=3) == 7
    finally:
        await pool.close()
    assert await db.fetchval("SELECT array_agg(key) FROM idempotency_keys") == ["live"]


async def test_the_running_app_purges_expired_keys_on_its_own(
    start_app: AppClient, db: asyncpg.Connection
) -> None:
    await _key(db, "old", -60)
    await _key(db, "live", 3600)
    await start_app(idempotency_purge_interval_s=0.05)

    async def purged() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM idempotency_keys") == 1)

    # The purge is the app's background task, which tells no one when it has run.
    await poll(purged, timeout_s=10)
    assert await db.fetchval("SELECT key FROM idempotency_keys") == "live"
