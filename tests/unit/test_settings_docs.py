"""The settings' one declaration, and the files written from it, agree."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import attrs

from order_engine.config import (
    Settings,
    env_example,
    load_settings,
    variables,
    with_settings_table,
)

ROOT = Path(__file__).resolve().parents[2]
# Filled from DATABASE_URL / REDIS_URL and their parts, or by the embedded servers.
CONNECTION_FIELDS = {"database_url", "redis_url", "embedded_postgres", "embedded_redis"}
URLS = {"DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r:6379/0"}


def test_env_example_is_written_from_the_declarations() -> None:
    """Run `make settings-docs` when this fails."""
    assert (ROOT / ".env.example").read_text() == env_example()


def test_configuration_doc_table_is_written_from_the_declarations() -> None:
    """Run `make settings-docs` when this fails."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == with_settings_table(doc)


def test_every_settings_field_is_declared_with_a_variable() -> None:
    declared = {v.field for v in variables() if v.field is not None}
    fields = {f.name for f in attrs.fields(Settings)}
    assert fields - CONNECTION_FIELDS == declared


def test_variable_names_are_unique_and_have_help() -> None:
    names = Counter(v.spec.env for v in variables())
    assert [n for n, count in names.items() if count > 1] == []
    assert all(v.spec.help and v.spec.section for v in variables())


def test_env_example_read_back_gives_the_defaults(tmp_path: Path) -> None:
    """Each default as written parses, within its bounds, to the default itself."""
    env_file = tmp_path / ".env"
    env_file.write_text(env_example())
    loaded = load_settings(URLS, env_file=env_file)
    assert loaded == Settings(database_url=URLS["DATABASE_URL"], redis_url=URLS["REDIS_URL"])
