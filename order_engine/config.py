"""Settings from the environment, with a `.env` file as a fallback."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import attrs
from dotenv import dotenv_values

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_DATA_DIR = Path(".order-engine")


class ConfigError(Exception):
    """Start-up cannot go on: the message names every setting that is wrong or missing."""


@attrs.frozen
class Settings:
    app_env: str = "development"
    host: str = "0.0.0.0"
    port: int = 3000
    # Empty while an embedded server stands in; `embedded_services` fills them in.
    database_url: str = ""
    redis_url: str = ""
    embedded_postgres: bool = False
    embedded_redis: bool = False
    data_dir: Path = DEFAULT_DATA_DIR
    redis_prefix: str = "oe:"
    worker_concurrency: int = 50
    worker_id: str = ""
    db_pool_min: int = 2
    db_pool_max: int = 20
    db_command_timeout_s: float = 10.0
    mock_dex_quote_delay_ms: int = 200
    mock_dex_execution_delay_ms: int = 2500
    mock_dex_failure_rate: float = 0.05
    mock_dex_seed: int | None = None
    quote_timeout_ms: int = 1000
    chain_slot_ms: int = 400
    chain_tx_expiry_slots: int = 150
    chain_slot_max_txs: int = 5000
    price_walk_interval_ms: int = 1000
    price_walk_volatility_bps: float = 10.0
    pool_launch_interval_s: float = 0.0
    max_body_bytes: int = 64 * 1024
    max_input_amount: Decimal = Decimal(1_000_000_000)
    hub_buffer_size: int = 256
    ws_heartbeat_s: float = 20.0
    ws_max_per_client: int = 100
    api_keys: tuple[str, ...] = ()
    rate_limit_wallet_per_minute: int = 0
    rate_limit_global_per_second: int = 0
    shutdown_timeout_s: float = 30.0
    retry_max_attempts: int = 3
    retry_base_ms: int = 500
    retry_max_ms: int = 30_000
    reclaim_idle_ms: int = 15_000
    max_deliveries: int = 5
    reconcile_interval_s: float = 5.0
    reconcile_grace_s: float = 10.0
    log_level: str = "INFO"

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"


@attrs.frozen
class _Var:
    name: str
    field: str
    parse: Callable[[str], object]


def _bounded(parse: Callable[[str], T], *, zero_allowed: bool) -> Callable[[str], T]:
    """`parse`, refusing a value that is not finite, negative, or 0 unless allowed."""

    def parse_bounded(raw: str) -> T:
        value = parse(raw)
        low_ok = value >= 0 if zero_allowed else value > 0  # type: ignore[operator]
        if not (math.isfinite(value) and low_ok):  # type: ignore[arg-type]
            raise ValueError(
                "must be a finite number, 0 or more"
                if zero_allowed
                else "must be a finite number greater than 0"
            )
        return value

    return parse_bounded


def _positive(parse: Callable[[str], T]) -> Callable[[str], T]:
    return _bounded(parse, zero_allowed=False)


def _non_negative(parse: Callable[[str], T]) -> Callable[[str], T]:
    return _bounded(parse, zero_allowed=True)


def _rate(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _key_list(raw: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in raw.split(",") if key.strip())


_VARS = (
    _Var("APP_ENV", "app_env", str),
    _Var("HOST", "host", str),
    _Var("PORT", "port", _positive(int)),
    _Var("REDIS_PREFIX", "redis_prefix", str),
    _Var("WORKER_CONCURRENCY", "worker_concurrency", _positive(int)),
    _Var("WORKER_ID", "worker_id", str),
    _Var("DB_POOL_MIN", "db_pool_min", _non_negative(int)),
    _Var("DB_POOL_MAX", "db_pool_max", _positive(int)),
    _Var("DB_COMMAND_TIMEOUT_S", "db_command_timeout_s", _positive(float)),
    _Var("MOCK_DEX_QUOTE_DELAY_MS", "mock_dex_quote_delay_ms", _non_negative(int)),
    _Var("MOCK_DEX_EXECUTION_DELAY_MS", "mock_dex_execution_delay_ms", _non_negative(int)),
    _Var("MOCK_DEX_FAILURE_RATE", "mock_dex_failure_rate", _rate),
    _Var("MOCK_DEX_SEED", "mock_dex_seed", int),
    _Var("QUOTE_TIMEOUT_MS", "quote_timeout_ms", _positive(int)),
    _Var("CHAIN_SLOT_MS", "chain_slot_ms", _positive(int)),
    _Var("CHAIN_TX_EXPIRY_SLOTS", "chain_tx_expiry_slots", _positive(int)),
    _Var("CHAIN_SLOT_MAX_TXS", "chain_slot_max_txs", _positive(int)),
    _Var("PRICE_WALK_INTERVAL_MS", "price_walk_interval_ms", _non_negative(int)),
    _Var("PRICE_WALK_VOLATILITY_BPS", "price_walk_volatility_bps", _non_negative(float)),
    _Var("POOL_LAUNCH_INTERVAL_S", "pool_launch_interval_s", _non_negative(float)),
    _Var("MAX_BODY_BYTES", "max_body_bytes", _positive(int)),
    _Var("MAX_INPUT_AMOUNT", "max_input_amount", _positive(Decimal)),
    _Var("HUB_BUFFER_SIZE", "hub_buffer_size", _positive(int)),
    _Var("WS_HEARTBEAT_S", "ws_heartbeat_s", _positive(float)),
    _Var("WS_MAX_PER_CLIENT", "ws_max_per_client", _positive(int)),
    _Var("API_KEYS", "api_keys", _key_list),
    _Var("RATE_LIMIT_WALLET_PER_MINUTE", "rate_limit_wallet_per_minute", _non_negative(int)),
    _Var("RATE_LIMIT_GLOBAL_PER_SECOND", "rate_limit_global_per_second", _non_negative(int)),
    _Var("SHUTDOWN_TIMEOUT_S", "shutdown_timeout_s", _positive(float)),
    _Var("RETRY_MAX_ATTEMPTS", "retry_max_attempts", _positive(int)),
    _Var("RETRY_BASE_MS", "retry_base_ms", _positive(int)),
    _Var("RETRY_MAX_MS", "retry_max_ms", _positive(int)),
    _Var("RECLAIM_IDLE_MS", "reclaim_idle_ms", _positive(int)),
    _Var("MAX_DELIVERIES", "max_deliveries", _positive(int)),
    _Var("RECONCILE_INTERVAL_S", "reconcile_interval_s", _positive(float)),
    _Var("RECONCILE_GRACE_S", "reconcile_grace_s", _positive(float)),
    _Var("LOG_LEVEL", "log_level", str.upper),
    _Var("DATA_DIR", "data_dir", Path),
)


def _database_url(env: Mapping[str, str]) -> str | None:
    if url := env.get("DATABASE_URL"):
        return url
    if host := env.get("DB_HOST"):
        user = quote(env.get("DB_USER", "postgres"), safe="")
        password = env.get("DB_PASSWORD")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        port = env.get("DB_PORT", "5432")
        name = env.get("DB_NAME", "order_engine")
        return f"postgresql://{auth}@{host}:{port}/{name}"
    return None


def _redis_url(env: Mapping[str, str]) -> str | None:
    if url := env.get("REDIS_URL"):
        return url
    if host := env.get("REDIS_HOST"):
        return f"redis://{host}:{env.get('REDIS_PORT', '6379')}/0"
    return None


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Read settings: the process environment wins over the `.env` file.

    In production a missing database or Redis setting, like any malformed value, raises
    one ConfigError that names all of them; in development an embedded server stands in
    for each missing one and a single warning says so.
    """
    file_values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    env = {**file_values, **(os.environ if environ is None else environ)}

    problems: list[str] = []
    values: dict[str, object] = {}
    for var in _VARS:
        raw = env.get(var.name)
        if raw is None or raw == "":
            continue
        try:
            values[var.field] = var.parse(raw)
        except (ValueError, ArithmeticError) as exc:
            problems.append(f"{var.name}={raw!r}: {exc}")

    production = values.get("app_env", "development") == "production"
    embedded: list[str] = []
    for field, found, names, flag in (
        ("database_url", _database_url(env), "DATABASE_URL (or DB_HOST)", "embedded_postgres"),
        ("redis_url", _redis_url(env), "REDIS_URL (or REDIS_HOST)", "embedded_redis"),
    ):
        if found is not None:
            values[field] = found
        elif production:
            problems.append(f"{names} is required in production")
        else:
            values[flag] = True
            embedded.append(names)

    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    if embedded:
        log.warning(
            "development: %s not set; embedded servers stand in, under %s",
            " and ".join(embedded),
            values.get("data_dir", DEFAULT_DATA_DIR),
        )
    return Settings(**values)  # type: ignore[arg-type]
