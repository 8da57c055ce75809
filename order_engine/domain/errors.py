"""What can go wrong in the domain, under one base class the API maps with one table."""

from __future__ import annotations

import uuid

import attrs

from order_engine.domain.orders import OrderStatus


@attrs.frozen
class Quota:
    """One submission limit as it stands for one caller, after counting this submission."""

    policy: str
    """Which limit: "wallet" or "global"."""
    limit: int
    window_s: int
    remaining: int
    reset_s: int
    """Seconds until the window ends and `remaining` is back to `limit`."""


class DomainError(Exception):
    """A request the domain refuses. `retry_after_s`: when asking again may succeed."""

    retry_after_s: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OrderNotFound(DomainError):
    def __init__(self, order_id: uuid.UUID) -> None:
        super().__init__(f"order {order_id} does not exist")
        self.order_id = order_id


class StatusConflict(DomainError):
    def __init__(
        self,
        order_id: uuid.UUID,
        current: OrderStatus,
        wanted: OrderStatus,
        message: str | None = None,
    ) -> None:
        super().__init__(message or f"order {order_id} is {current}; it cannot become {wanted}")
        self.order_id = order_id
        self.current = current
        self.wanted = wanted


class RateLimited(DomainError):
    def __init__(self, message: str, retry_after_s: int, quotas: tuple[Quota, ...] = ()) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.quotas = quotas


class KeyReused(DomainError):
    """An Idempotency-Key was used for a request with a different method, path or body."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was used for a different request")


class KeyInProgress(DomainError):
    """The first request with this Idempotency-Key has not finished yet."""

    retry_after_s = 1

    def __init__(self, key: str) -> None:
        super().__init__(f"the first request with Idempotency-Key {key!r} is still being processed")


class ClientOrderIdInUse(DomainError):
    """The wallet has an order of that clientOrderId already: `order_id` is that order."""

    def __init__(self, client_order_id: str, order_id: uuid.UUID) -> None:
        super().__init__(f"clientOrderId {client_order_id!r} already names order {order_id}")
        self.order_id = order_id


class PoolExists(DomainError):
    """A pool for that pair is already trading on that DEX."""
