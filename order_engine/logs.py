"""Log lines that carry the order they are about: JSON in production, readable otherwise.

The order id travels in a context variable, set where an order's work begins (a worker's
task, a service call); asyncio copies the context into every task started from there, so
each line logged on that order's behalf carries it without being passed along.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from datetime import UTC, datetime

ORDER_ID: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "order_id", default=None
)


def bind_order(order_id: uuid.UUID) -> None:
    """Mark the current task's log lines as about this order."""
    ORDER_ID.set(order_id)


class OrderContext(logging.Filter):
    """Gives every record an `order_id`: the bound one, or None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "order_id"):
            order_id = ORDER_ID.get()
            record.order_id = str(order_id) if order_id is not None else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        order_id = getattr(record, "order_id", None)
        if order_id is not None:
            line["orderId"] = order_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ReadableFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(order)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        order_id = getattr(record, "order_id", None)
        record.order = f" [order {order_id}]" if order_id else ""
        return super().format(record)


def configure_logging(*, json_lines: bool, level: str | int = logging.INFO) -> None:
    """One stderr handler on the root logger, replacing any there."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(OrderContext())
    handler.setFormatter(JsonFormatter() if json_lines else ReadableFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
