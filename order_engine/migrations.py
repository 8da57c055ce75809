"""Applies the numbered SQL files in `sql/`, once each, under an advisory lock."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# Any constant works as long as nothing else in the database uses it; this one spells
# "oe-migr" in ASCII.
MIGRATION_LOCK_KEY = 0x6F652D6D696772


def migrations_dir() -> Path:
    """`sql/` beside the package in a checkout, or inside it in an installed wheel."""
    packaged = Path(str(resources.files("order_engine"))) / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "sql"


def migration_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("[0-9]*.sql"))


async def ensure_database(dsn: str) -> None:
    """Create the database named in `dsn` if the server lacks it (a fresh machine)."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        name = _database_name(dsn)
        admin = await asyncpg.connect(dsn, database="postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name)
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
    else:
        await conn.close()


def _database_name(dsn: str) -> str:
    name = dsn.rsplit("/", 1)[-1].split("?", 1)[0]
    if not name or '"' in name:
        raise ValueError(f"cannot read a database name from {dsn!r}")
    return name


async def apply_migrations(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Apply every file not yet recorded; return the names applied by this call.

    The session lock is held on this one connection for the whole run, so a second
    process starting at the same moment waits and then finds nothing left to do.
    """
    files = migration_files(directory or migrations_dir())
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                name       text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in files:
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            log.info("applied migration %s", path.name)
            applied.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied


async def migrate(dsn: str) -> list[str]:
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()
