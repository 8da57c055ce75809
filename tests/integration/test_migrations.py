"""Migrations: each file once, recorded, and safe when processes start together."""

from __future__ import annotations

import asyncio

import asyncpg

from order_engine.migrations import apply_migrations, migration_files, migrations_dir
from tests.conftest import _admin, database_url


async def test_concurrent_migrators_apply_each_file_once(redis_prefix: str) -> None:
    name = "oe_test_" + redis_prefix.split(":")[2] + "_migr"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        conns = [await asyncpg.connect(database_url(name)) for _ in range(4)]
        try:
            applied = await asyncio.gather(*(apply_migrations(c) for c in conns))
            files = [p.name for p in migration_files(migrations_dir())]
            assert sorted(name for names in applied for name in names) == sorted(files)
            assert await apply_migrations(conns[0]) == []
            recorded = await conns[0].fetch("SELECT name FROM schema_migrations ORDER BY name")
            assert [r["name"] for r in recorded] == sorted(files)
        finally:
            for conn in conns:
                await conn.close()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
