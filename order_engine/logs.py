"""Log lines that carry the order and the request they are about: JSON lines where logs
are collected, readable text at a terminal.

The order id and the request id travel in context variables, set where an order's work
begins (a worker's task, a service call) or a request arrives; asyncio copies the context
into every task started from there, so each line logged on their behalf carries them
without their being passed along.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonLinesFormatter

from order_engine.formats import timestamp_str

ORDER_ID: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "order_id", default=None
)
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

ACCESS_LOGGER = "order_engine.access"


def bind_order(order_id: uuid.UUID) -> None:
    """Mark the current task's log lines as about this order."""
    ORDER_ID.set(order_id)


class OrderContext(logging.Filter):
    """Gives a record `order_id` and `request_id` when they are bound (and not passed in
    `extra`), and nothing otherwise, so that a line about no order has no such key."""

    def filter(self, record: logging.LogRecord) -> bool:
        order_id = ORDER_ID.get()
        if order_id is not None and not hasattr(record, "order_id"):
            record.order_id = str(order_id)
        request_id = REQUEST_ID.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class JsonFormatter(_JsonLinesFormatter):
    """One JSON object a line: timestamp (UTC, ms, `Z`, as the API writes it), level,
    logger, message, then every `extra` field, with orderId and requestId when bound."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={
                "levelname": "level",
                "name": "logger",
                "order_id": "orderId",
                "request_id": "requestId",
                "exc_info": "exception",
            },
            json_default=str,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = timestamp_str(datetime.fromtimestamp(record.created, UTC))
        super().add_fields(log_data, record, message_dict)


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
