"""What it looks like when Postgres or Redis cannot be reached.

The API answers these with 503 and the workers back off and try again later; neither
treats them as a fault of the order.
"""

from __future__ import annotations

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # A pooled connection whose backend was terminated can fail with this instead of a
    # connection error (asyncpg issues #784, #1069); the pool replaces it afterwards.
    asyncpg.InternalClientError,
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)
