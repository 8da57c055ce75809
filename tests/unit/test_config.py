"""load_settings: the environment over the `.env` file, one error naming every problem."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from order_engine.config import (
    ConfigError,
    Settings,
    load_settings,
)

# Both URLs given, so tests about other settings see neither the production error nor the
# development warning.
URLS = {
    "DATABASE_URL": "postgresql://app@db.internal:5432/orders",
    "REDIS_URL": "redis://cache.internal:6379/0",
}


def load(environ: dict[str, str]) -> Settings:
    # env_file=None: the default `.env` is relative to the working directory, and a
    # developer's own file there must not leak into these tests.
    return load_settings(environ, env_file=None)


def test_production_without_database_and_redis_raises_one_error_naming_both() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load({"APP_ENV": "production"})
    message = str(excinfo.value)
    assert "DATABASE_URL" in message
    assert "REDIS_URL" in message


def test_production_reports_malformed_and_missing_settings_together() -> None:
    # An operator fixing one problem per restart would need several restarts; the single
    # error has to list everything at once.
    with pytest.raises(ConfigError) as excinfo:
        load({"APP_ENV": "production", "WORKER_CONCURRENCY": "many", "PORT": "0"})
    message = str(excinfo.value)
    for name in ("WORKER_CONCURRENCY", "PORT", "DATABASE_URL", "REDIS_URL"):
        assert name in message


def test_production_with_both_urls_loads_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="order_engine.config"):
        settings = load({"APP_ENV": "production", **URLS})
    assert settings.is_production
    assert settings.database_url == URLS["DATABASE_URL"]
    assert settings.redis_url == URLS["REDIS_URL"]
    assert caplog.records == []


def test_production_accepts_db_host_and_redis_host_instead_of_urls() -> None:
    settings = load({"APP_ENV": "production", "DB_HOST": "db", "REDIS_HOST": "cache"})
    assert settings.database_url == "postgresql://postgres@db:5432/order_engine"
    assert settings.redis_url == "redis://cache:6379/0"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("WORKER_CONCURRENCY", "ten"),
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_CONCURRENCY", "2.5"),
        ("PORT", "-1"),
        ("DB_POOL_MIN", "-1"),
        ("DB_POOL_MAX", "0"),
        ("MOCK_DEX_FAILURE_RATE", "1.5"),
        ("MOCK_DEX_FAILURE_RATE", "-0.1"),
        ("MOCK_DEX_FAILURE_RATE", "often"),
        ("MOCK_DEX_QUOTE_DELAY_MS", "-5"),
        ("MOCK_DEX_SEED", "abc"),
        ("MAX_INPUT_AMOUNT", "lots"),
        ("MAX_INPUT_AMOUNT", "0"),
        ("WS_HEARTBEAT_S", "0"),
        ("SHUTDOWN_TIMEOUT_S", "soon"),
        ("SHUTDOWN_TIMEOUT_S", "inf"),
        ("WS_HEARTBEAT_S", "nan"),
        ("MAX_INPUT_AMOUNT", "NaN"),
        ("MAX_INPUT_AMOUNT", "Infinity"),
    ],
)
def test_malformed_value_raises_config_error_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load({**URLS, name: raw})
    message = str(excinfo.value)
    assert name in message
    # The offending value is quoted so the operator can see what was actually read.
    assert repr(raw) in message


def test_malformed_values_are_all_reported_in_development_too() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load({"WORKER_CONCURRENCY": "x", "MOCK_DEX_FAILURE_RATE": "2"})
    message = str(excinfo.value)
    assert "WORKER_CONCURRENCY" in message
    assert "MOCK_DEX_FAILURE_RATE" in message


def test_failure_rate_bounds_are_inclusive() -> None:
    assert load({**URLS, "MOCK_DEX_FAILURE_RATE": "0"}).mock_dex_failure_rate == 0.0
    assert load({**URLS, "MOCK_DEX_FAILURE_RATE": "1"}).mock_dex_failure_rate == 1.0


def test_development_with_nothing_set_asks_for_embedded_servers_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="order_engine.config"):
        settings = load({})
    assert settings == Settings(embedded_postgres=True, embedded_redis=True)
    assert settings.data_dir == Path(".order-engine")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    # One warning covering both defaults, not one per setting.
    assert "DATABASE_URL" in warnings[0].getMessage()
    assert "REDIS_URL" in warnings[0].getMessage()


def test_development_warning_names_only_the_defaulted_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="order_engine.config"):
        settings = load({"REDIS_URL": URLS["REDIS_URL"]})
    assert settings.embedded_postgres
    assert not settings.embedded_redis
    assert len(caplog.records) == 1
    assert "DATABASE_URL" in caplog.records[0].getMessage()
    assert "REDIS_URL" not in caplog.records[0].getMessage()


def test_values_are_parsed_to_their_field_types() -> None:
    settings = load(
        {
            **URLS,
            "PORT": "8080",
            "WORKER_CONCURRENCY": "7",
            "DB_POOL_MIN": "0",
            "MOCK_DEX_FAILURE_RATE": "0.25",
            "MOCK_DEX_SEED": "-3",
            "MAX_INPUT_AMOUNT": "12.50",
            "WS_HEARTBEAT_S": "1.5",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.port == 8080
    assert settings.worker_concurrency == 7
    assert settings.db_pool_min == 0
    assert settings.mock_dex_failure_rate == 0.25
    assert settings.mock_dex_seed == -3
    # Decimal, not float: the cap is compared against exact order amounts.
    assert settings.max_input_amount == Decimal("12.50")
    assert isinstance(settings.max_input_amount, Decimal)
    assert settings.ws_heartbeat_s == 1.5
    assert settings.log_level == "DEBUG"


def test_empty_value_counts_as_unset() -> None:
    # `WORKER_CONCURRENCY=` in a compose file means "not set", not a malformed number.
    settings = load({**URLS, "WORKER_CONCURRENCY": "", "MOCK_DEX_SEED": ""})
    assert settings.worker_concurrency == Settings().worker_concurrency
    assert settings.mock_dex_seed is None


def test_db_parts_compose_a_url_with_quoted_user_and_password() -> None:
    settings = load(
        {
            "REDIS_URL": URLS["REDIS_URL"],
            "DB_HOST": "db.internal",
            "DB_PORT": "6543",
            "DB_NAME": "orders",
            "DB_USER": "app user",
            "DB_PASSWORD": "p@ss:w/rd%?#",
        }
    )
    # Unquoted, the "@", ":" and "/" in the password would be read as URL structure.
    assert settings.database_url == (
        "postgresql://app%20user:p%40ss%3Aw%2Frd%25%3F%23@db.internal:6543/orders"
    )


def test_db_parts_without_password_leave_it_out() -> None:
    settings = load({"REDIS_URL": URLS["REDIS_URL"], "DB_HOST": "db", "DB_USER": "reader"})
    assert settings.database_url == "postgresql://reader@db:5432/order_engine"


def test_database_url_wins_over_db_parts() -> None:
    settings = load({**URLS, "DB_HOST": "elsewhere", "DB_PASSWORD": "secret"})
    assert settings.database_url == URLS["DATABASE_URL"]


def test_redis_host_and_port_compose_a_url() -> None:
    settings = load({"DATABASE_URL": URLS["DATABASE_URL"], "REDIS_HOST": "r", "REDIS_PORT": "7000"})
    assert settings.redis_url == "redis://r:7000/0"


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# local overrides\n"
        f"DATABASE_URL={URLS['DATABASE_URL']}\n"
        f"REDIS_URL={URLS['REDIS_URL']}\n"
        "WORKER_CONCURRENCY=12\n"
        'REDIS_PREFIX="dev:"\n'
    )
    settings = load_settings({}, env_file=env_file)
    assert settings.database_url == URLS["DATABASE_URL"]
    assert settings.worker_concurrency == 12
    assert settings.redis_prefix == "dev:"


def test_environ_wins_over_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "WORKER_CONCURRENCY=12\nPORT=4000\nDATABASE_URL=postgresql://from-file/db\n"
    )
    settings = load_settings(
        {"WORKER_CONCURRENCY": "3", "DATABASE_URL": URLS["DATABASE_URL"]}, env_file=env_file
    )
    assert settings.worker_concurrency == 3
    assert settings.database_url == URLS["DATABASE_URL"]
    # What the environment does not set still comes from the file.
    assert settings.port == 4000


def test_env_file_can_make_production_complete(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"DATABASE_URL={URLS['DATABASE_URL']}\nREDIS_URL={URLS['REDIS_URL']}\n")
    settings = load_settings({"APP_ENV": "production"}, env_file=env_file)
    assert settings.is_production
    assert settings.redis_url == URLS["REDIS_URL"]


def test_malformed_value_in_env_file_is_reported(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HUB_BUFFER_SIZE=big\n")
    with pytest.raises(ConfigError, match="HUB_BUFFER_SIZE"):
        load_settings(URLS, env_file=env_file)


def test_missing_env_file_is_not_an_error(tmp_path: Path) -> None:
    settings = load_settings({**URLS, "PORT": "3100"}, env_file=tmp_path / "absent.env")
    assert settings.port == 3100


def test_process_environment_is_read_when_environ_is_omitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("WORKER_CONCURRENCY", "9")
    assert load_settings(env_file=None).worker_concurrency == 9
