"""How numbers and times are written wherever they leave the engine as JSON."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Context, Decimal

import cattrs

# normalize() rounds to the context's precision; this one keeps every stored digit.
_EXACT = Context(prec=100)


def decimal_str(value: Decimal) -> str:
    """Plain notation, no exponent and no trailing zeros: Decimal("1.50E+3") -> "1500"."""
    text = format(value.normalize(_EXACT), "f")
    return "0" if text == "-0" else text


def timestamp_str(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds: 2026-11-24T10:15:30.123Z."""
    utc = value.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds")[:23] + "Z"


# Values as JSON without losing a digit, for what the engine and the chain store and send
# each other (never for the API, whose decimals are normalised by decimal_str).
exact_json = cattrs.Converter()
exact_json.register_unstructure_hook(Decimal, str)
exact_json.register_structure_hook(Decimal, lambda value, _: Decimal(value))
exact_json.register_unstructure_hook(uuid.UUID, str)
exact_json.register_structure_hook(uuid.UUID, lambda value, _: uuid.UUID(value))
exact_json.register_unstructure_hook(datetime, datetime.isoformat)
exact_json.register_structure_hook(datetime, lambda value, _: datetime.fromisoformat(value))
