"""Settings from the environment, with a `.env` file as a fallback.

Each setting is declared once, as a field of `Settings` made by `setting()`: its
variable, default, parser (with its bounds) and one line of help. The loader reads the
variables from those declarations, and `.env.example` and the table in
docs/configuration.md are written from them (`make settings-docs`); a test fails when
either file disagrees with the declarations.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import attrs
from dotenv import dotenv_values

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

DEFAULT_DATA_DIR = Path(".order-engine")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


class ConfigError(Exception):
    """Start-up cannot go on: the message names every setting that is wrong or missing."""


@attrs.frozen
class Parser(Generic[T_co]):
    """Text to a value, refusing what is out of bounds; `kind` says what it takes."""

    convert: Callable[[str], T_co]
    kind: str

    def __call__(self, raw: str) -> T_co:
        return self.convert(raw)


def _ranged(
    convert: Callable[[str], Any], name: str, low: float, high: float | None, *, low_open: bool
) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        value = convert(raw)
        above = value > low if low_open else value >= low
        if not (math.isfinite(value) and above and (high is None or value <= high)):
            raise ValueError(f"must be {name}")
        return value

    return parse


def _bounds(low: float, high: float | None, low_open: bool) -> str:
    if high is not None:
        return f"from {low:g} to {high:g}"
    return f"greater than {low:g}" if low_open else f"{low:g} or more"


def integer(*, low: int = 1, high: int | None = None) -> Parser[int]:
    name = f"a whole number {_bounds(low, high, False)}"
    return Parser(_ranged(int, name, low, high, low_open=False), name)


def number(*, low: float = 0.0, high: float | None = None, low_open: bool = False) -> Parser[float]:
    name = f"a finite number {_bounds(low, high, low_open)}"
    return Parser(_ranged(float, name, low, high, low_open=low_open), name)


def decimal(*, low: Decimal = Decimal(0)) -> Parser[Decimal]:
    name = f"a finite decimal greater than {low}"
    return Parser(_ranged(Decimal, name, float(low), None, low_open=True), name)


def _any_int(raw: str) -> int:
    return int(raw)


def _text(raw: str) -> str:
    return raw


def _level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def choice(*options: str) -> Parser[str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw

    return Parser(parse, f"one of {', '.join(options)}")


def _key_list(raw: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in raw.split(",") if key.strip())


def _networks(raw: str) -> Networks:
    return tuple(ipaddress.ip_network(part, strict=False) for part in _key_list(raw))


ANY_INTEGER = Parser(_any_int, "a whole number")
TEXT = Parser(_text, "text")
PATH = Parser(Path, "a path")
LEVEL = Parser(_level, f"one of {', '.join(LOG_LEVELS)}")
KEY_LIST = Parser(_key_list, "comma-separated list")
NETWORKS = Parser(_networks, "comma-separated addresses or CIDR networks")


@attrs.frozen
class Spec:
    """What the environment, `.env.example` and the docs know of one setting."""

    env: str
    parse: Parser[Any]
    help: str
    section: str
    secret: bool = False
    """Never written into `.env.example` with a value."""


_SPEC = "order_engine.setting"


def setting(
    env: str,
    default: T,
    parse: Parser[T],
    help: str,
    *,
    section: str,
    secret: bool = False,
) -> T:
    """A field of Settings read from the variable `env`; see the module's docstring."""
    field: T = attrs.field(
        default=default, metadata={_SPEC: Spec(env, parse, help, section, secret)}
    )
    return field


_SERVER = "Server"
_DB = "PostgreSQL"
_REDIS = "Redis"
_WORK = "Workers and recovery"
_DEX = "Simulated DEXs and chain"
_API = "API limits and access"
_LOGS = "Logs"


@attrs.frozen
class Settings:
    # Empty while an embedded server stands in; `embedded_services` fills them in. They
    # are read by `_database_url` and `_redis_url`, from the variables of URL_VARIABLES.
    database_url: str = ""
    redis_url: str = ""
    embedded_postgres: bool = False
    embedded_redis: bool = False

    app_env: str = setting(
        "APP_ENV",
        "development",
        TEXT,
        "production refuses to start without DATABASE_URL and REDIS_URL, and has no dev routes",
        section=_SERVER,
    )
    host: str = setting("HOST", "0.0.0.0", TEXT, "address to listen on", section=_SERVER)
    port: int = setting("PORT", 3000, integer(high=65535), "port to listen on", section=_SERVER)
    data_dir: Path = setting(
        "DATA_DIR", DEFAULT_DATA_DIR, PATH, "data of the embedded servers", section=_SERVER
    )
    shutdown_timeout_s: float = setting(
        "SHUTDOWN_TIMEOUT_S",
        30.0,
        number(low_open=True),
        "on SIGTERM, how long in-flight orders may take to finish",
        section=_SERVER,
    )

    db_pool_min: int = setting(
        "DB_POOL_MIN", 2, integer(low=0), "connections the pool keeps open", section=_DB
    )
    db_pool_max: int = setting(
        "DB_POOL_MAX", 20, integer(), "connections the pool may open", section=_DB
    )
    db_command_timeout_s: float = setting(
        "DB_COMMAND_TIMEOUT_S",
        10.0,
        number(low_open=True),
        "longest one SQL statement may take",
        section=_DB,
    )

    redis_prefix: str = setting(
        "REDIS_PREFIX", "oe:", TEXT, "prefix of every Redis key and channel", section=_REDIS
    )
    redis_pool_max: int = setting(
        "REDIS_POOL_MAX",
        64,
        integer(),
        "connections the Redis pool may open (the stream reader has one more of its own)",
        section=_REDIS,
    )
    redis_pool_timeout_s: float = setting(
        "REDIS_POOL_TIMEOUT_S",
        5.0,
        number(low_open=True),
        "how long a command waits for a free pooled connection before failing",
        section=_REDIS,
    )

    worker_concurrency: int = setting(
        "WORKER_CONCURRENCY", 50, integer(), "orders this process executes at once", section=_WORK
    )
    worker_id: str = setting(
        "WORKER_ID",
        "",
        TEXT,
        "consumer name in the stream's group (empty: hostname-pid-random)",
        section=_WORK,
    )
    retry_max_attempts: int = setting(
        "RETRY_MAX_ATTEMPTS",
        3,
        integer(),
        "attempts in all for an order whose DEX fails transiently",
        section=_WORK,
    )
    retry_base_ms: int = setting(
        "RETRY_BASE_MS",
        500,
        integer(),
        "first retry's backoff (doubles, full jitter)",
        section=_WORK,
    )
    retry_max_ms: int = setting(
        "RETRY_MAX_MS", 30_000, integer(), "longest retry backoff", section=_WORK
    )
    reclaim_idle_ms: int = setting(
        "RECLAIM_IDLE_MS",
        15_000,
        integer(),
        "an entry idle this long in a consumer that stopped renewing it is reclaimed",
        section=_WORK,
    )
    max_deliveries: int = setting(
        "MAX_DELIVERIES",
        5,
        integer(),
        "an entry delivered more often is dead-lettered and its order failed",
        section=_WORK,
    )
    reconcile_interval_s: float = setting(
        "RECONCILE_INTERVAL_S",
        5.0,
        number(low_open=True),
        "how often the leader looks for accepted orders Redis no longer holds",
        section=_WORK,
    )
    reconcile_grace_s: float = setting(
        "RECONCILE_GRACE_S",
        10.0,
        number(low_open=True),
        "how long such an order must be unchanged before it is queued again",
        section=_WORK,
    )

    mock_dex_quote_delay_ms: int = setting(
        "MOCK_DEX_QUOTE_DELAY_MS",
        200,
        integer(low=0),
        "time a DEX takes to quote",
        section=_DEX,
    )
    mock_dex_execution_delay_ms: int = setting(
        "MOCK_DEX_EXECUTION_DELAY_MS",
        2500,
        integer(low=0),
        "how long a sent transaction waits before a slot may apply it",
        section=_DEX,
    )
    mock_dex_failure_rate: float = setting(
        "MOCK_DEX_FAILURE_RATE",
        0.05,
        number(high=1.0),
        "share of transactions the DEX refuses (a transient failure)",
        section=_DEX,
    )
    mock_dex_seed: int | None = setting(
        "MOCK_DEX_SEED",
        None,
        ANY_INTEGER,
        "seed of the simulation (empty: random)",
        section=_DEX,
    )
    quote_timeout_ms: int = setting(
        "QUOTE_TIMEOUT_MS", 1000, integer(), "longest wait for one quote", section=_DEX
    )
    chain_slot_ms: int = setting(
        "CHAIN_SLOT_MS",
        400,
        integer(low=10),
        "the shared chain closes a slot this often (one process at a time); shorter than "
        "a Postgres commit would only queue slots",
        section=_DEX,
    )
    chain_tx_expiry_slots: int = setting(
        "CHAIN_TX_EXPIRY_SLOTS",
        150,
        integer(),
        "a transaction not applied within this many slots of its build never lands",
        section=_DEX,
    )
    chain_slot_max_txs: int = setting(
        "CHAIN_SLOT_MAX_TXS",
        5000,
        integer(),
        "transactions one slot applies at most",
        section=_DEX,
    )
    price_walk_interval_ms: int = setting(
        "PRICE_WALK_INTERVAL_MS",
        1000,
        integer(low=0),
        "step interval of each pool's price walk (0 stops it)",
        section=_DEX,
    )
    price_walk_volatility_bps: float = setting(
        "PRICE_WALK_VOLATILITY_BPS",
        10.0,
        number(),
        "standard deviation of one price-walk step",
        section=_DEX,
    )
    pool_launch_interval_s: float = setting(
        "POOL_LAUNCH_INTERVAL_S",
        0.0,
        number(),
        "seconds between seeded pool launches for tokens that have none (0: off)",
        section=_DEX,
    )

    api_keys: tuple[str, ...] = setting(
        "API_KEYS",
        (),
        KEY_LIST,
        "keys one of which every /api route and WebSocket then needs (X-API-Key or ?apiKey=)",
        section=_API,
        secret=True,
    )
    rate_limit_wallet_per_minute: int = setting(
        "RATE_LIMIT_WALLET_PER_MINUTE",
        0,
        integer(low=0),
        "order submissions a wallet may make a minute (0: no limit)",
        section=_API,
    )
    rate_limit_global_per_second: int = setting(
        "RATE_LIMIT_GLOBAL_PER_SECOND",
        0,
        integer(low=0),
        "order submissions the whole service takes a second (0: no limit)",
        section=_API,
    )
    max_resting_per_wallet: int = setting(
        "MAX_RESTING_PER_WALLET",
        100,
        integer(low=0),
        "limit and sniper orders a wallet may have pending or waiting at once; more are "
        "refused with 429 (0: no limit)",
        section=_API,
    )
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES", 64 * 1024, integer(), "largest request body", section=_API
    )
    max_input_amount: Decimal = setting(
        "MAX_INPUT_AMOUNT",
        Decimal(1_000_000_000),
        decimal(),
        "largest inputAmount of an order",
        section=_API,
    )
    hub_buffer_size: int = setting(
        "HUB_BUFFER_SIZE",
        256,
        integer(),
        "events a subscriber may fall behind before its socket is closed (1013)",
        section=_API,
    )
    ws_heartbeat_s: float = setting(
        "WS_HEARTBEAT_S",
        20.0,
        number(low_open=True),
        "ping interval of idle WebSockets",
        section=_API,
    )
    ws_max_per_client: int = setting(
        "WS_MAX_PER_CLIENT",
        100,
        integer(),
        "WebSockets one client address may hold open; more are refused with 429",
        section=_API,
    )
    ws_max_total: int = setting(
        "WS_MAX_TOTAL", 8000, integer(), "WebSockets open at once; more get 503", section=_API
    )
    max_connections: int = setting(
        "MAX_CONNECTIONS", 10_000, integer(), "connections open at once; more get 503", section=_API
    )
    header_timeout_s: float = setting(
        "HEADER_TIMEOUT_S",
        10.0,
        number(low_open=True),
        "a new connection's request head must arrive within this, else 408",
        section=_API,
    )
    body_timeout_s: float = setting(
        "BODY_TIMEOUT_S",
        10.0,
        number(low_open=True),
        "a body must arrive within this, else 408",
        section=_API,
    )
    keepalive_timeout_s: float = setting(
        "KEEPALIVE_TIMEOUT_S",
        75.0,
        number(low_open=True),
        "an idle connection is closed after this (above the 60 s of common proxies)",
        section=_API,
    )
    trusted_proxies: Networks = setting(
        "TRUSTED_PROXIES",
        (),
        NETWORKS,
        "proxies whose X-Forwarded-For names the client (for the socket cap and the logs)",
        section=_API,
    )
    idempotency_purge_interval_s: float = setting(
        "IDEMPOTENCY_PURGE_INTERVAL_S",
        300.0,
        number(),
        "how often expired Idempotency-Key records are deleted (0: never)",
        section=_API,
    )

    log_level: str = setting(
        "LOG_LEVEL", "INFO", LEVEL, "INFO logs one access line per request", section=_LOGS
    )
    log_format: str = setting(
        "LOG_FORMAT",
        "auto",
        choice("auto", "json", "text"),
        "auto: JSON lines in production, readable text otherwise",
        section=_LOGS,
    )

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (self.log_format == "auto" and self.is_production)


@attrs.frozen
class Variable:
    """One declared variable: a setting's Spec, with the field it fills (None for the
    parts a connection URL is composed of)."""

    spec: Spec
    field: str | None
    default: object


# Read by `_database_url` and `_redis_url`; documented with the rest.
URL_VARIABLES = (
    Spec(
        "DATABASE_URL",
        TEXT,
        "PostgreSQL URL (or the DB_* parts below); unset in "
        "development: an embedded server under DATA_DIR",
        _DB,
        secret=True,
    ),
    Spec("DB_HOST", TEXT, "host, when DATABASE_URL is unset", _DB),
    Spec("DB_PORT", TEXT, "port (default 5432)", _DB),
    Spec("DB_NAME", TEXT, "database (default order_engine)", _DB),
    Spec("DB_USER", TEXT, "user (default postgres)", _DB),
    Spec("DB_PASSWORD", TEXT, "password (none by default)", _DB, secret=True),
    Spec(
        "REDIS_URL",
        TEXT,
        "Redis URL (or REDIS_HOST/REDIS_PORT); unset in development: "
        "an embedded server under DATA_DIR",
        _REDIS,
        secret=True,
    ),
    Spec("REDIS_HOST", TEXT, "host, when REDIS_URL is unset", _REDIS),
    Spec("REDIS_PORT", TEXT, "port (default 6379)", _REDIS),
)


def variables() -> Iterator[Variable]:
    """Every variable the engine reads, section by section in declaration order."""
    declared = [
        Variable(field.metadata[_SPEC], field.name, field.default)
        for field in attrs.fields(Settings)
        if _SPEC in field.metadata
    ]
    declared += [Variable(spec, None, None) for spec in URL_VARIABLES]
    sections = list(dict.fromkeys(v.spec.section for v in declared))
    for section in sections:
        # The URL and its parts lead their section.
        yield from (v for v in declared if v.spec.section == section and v.field is None)
        yield from (v for v in declared if v.spec.section == section and v.field is not None)


def _database_url(env: Mapping[str, str]) -> str | None:
    if url := env.get("DATABASE_URL"):
        return url
    if host := env.get("DB_HOST"):
        user = quote(env.get("DB_USER") or "postgres", safe="")
        password = env.get("DB_PASSWORD")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        port = env.get("DB_PORT") or "5432"
        name = env.get("DB_NAME") or "order_engine"
        return f"postgresql://{auth}@{host}:{port}/{name}"
    return None


def _redis_url(env: Mapping[str, str]) -> str | None:
    if url := env.get("REDIS_URL"):
        return url
    if host := env.get("REDIS_HOST"):
        return f"redis://{host}:{env.get('REDIS_PORT') or '6379'}/0"
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
    for var in variables():
        raw = env.get(var.spec.env)
        if var.field is None or raw is None or raw == "":
            continue
        try:
            values[var.field] = var.spec.parse(raw)
        except (ValueError, ArithmeticError) as exc:
            problems.append(f"{var.spec.env}={raw!r}: {exc}")

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


def _shown(value: object) -> str:
    """A default as it is written in `.env`."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def env_example() -> str:
    """The text of `.env.example`: every variable with its default and its help."""
    lines = [
        "# Every setting the engine reads, with its default; written by `make settings-docs`",
        "# from order_engine/config.py. Copy to .env to change any of them; variables set in",
        "# the environment win over the file. Never commit a .env holding secrets.",
    ]
    section = None
    for var in variables():
        if var.spec.section != section:
            section = var.spec.section
            lines += ["", f"# --- {section} ---"]
        lines.append(f"# {var.spec.help}")
        value = _shown(var.default)
        commented = var.field is None or var.spec.secret or value == ""
        lines.append(f"{'# ' if commented else ''}{var.spec.env}={value}")
    return "\n".join(lines) + "\n"


def settings_table() -> str:
    """The Markdown table of docs/configuration.md."""
    rows = ["| variable | default | accepts | what it does |", "|---|---|---|---|"]
    for var in variables():
        value = _shown(var.default)
        default = f"`{value}`" if value else "(unset)"
        rows.append(f"| `{var.spec.env}` | {default} | {var.spec.parse.kind} | {var.spec.help} |")
    return "\n".join(rows) + "\n"


TABLE_START = (
    "<!-- settings table: written by `make settings-docs`; edit order_engine/config.py -->"
)
TABLE_END = "<!-- end of settings table -->"


def with_settings_table(doc: str) -> str:
    """`doc` (docs/configuration.md) with the table between its markers written anew."""
    head, start, rest = doc.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not (start and end):
        raise ValueError("the settings table's markers are missing")
    return f"{head}{TABLE_START}\n{settings_table()}{TABLE_END}{tail}"


def write_settings_docs(root: Path) -> None:
    """Write `.env.example` and the table of docs/configuration.md under `root`."""
    (root / ".env.example").write_text(env_example())
    doc = root / "docs" / "configuration.md"
    doc.write_text(with_settings_table(doc.read_text()))
