"""The one JSON parser for what clients send: request bodies, the Idempotency-Key
fingerprint, cursors and the execute socket's first message.

It accepts I-JSON (RFC 7493) and nothing costlier: UTF-8 only, no duplicate member names,
no unpaired surrogates, nesting at most MAX_DEPTH deep, number literals of at most
MAX_NUMBER_CHARS characters and within 10^±MAX_EXPONENT, each checked before the work
it would cost is done. Numbers stay exact: an integer literal is an int, any other a
Decimal. Whatever is refused raises ApiError 400 `invalid_json` naming the field.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from order_engine.api.errors import ApiError, FieldError

MAX_DEPTH = 16
MAX_NUMBER_CHARS = 40
MAX_EXPONENT = 40

# A JSON string (escapes included) and the brackets outside strings; used to measure the
# nesting before the recursive parser ever sees it.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class _Refused(Exception):
    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class _BadNumber:
    """Stands in for a number literal that was refused, until its path is known."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def bounded_decimal(literal: str) -> Decimal:
    """A decimal literal as a Decimal, refused (ValueError) before it can cost anything:
    at most MAX_NUMBER_CHARS characters, magnitude within 10^±MAX_EXPONENT."""
    if len(literal) > MAX_NUMBER_CHARS:
        raise ValueError(f"has more than {MAX_NUMBER_CHARS} characters")
    try:
        number = Decimal(literal)
    except InvalidOperation:
        raise ValueError("is not a decimal number") from None
    if number.is_finite() and number and not -MAX_EXPONENT <= number.adjusted() <= MAX_EXPONENT:
        raise ValueError(f"is out of range (10^-{MAX_EXPONENT} to 10^{MAX_EXPONENT})")
    return number


def _int(literal: str) -> int | _BadNumber:
    if len(literal) > MAX_NUMBER_CHARS:
        return _BadNumber(f"has more than {MAX_NUMBER_CHARS} characters")
    return int(literal)


def _float(literal: str) -> Decimal | _BadNumber:
    try:
        return bounded_decimal(literal)
    except ValueError as exc:
        return _BadNumber(str(exc))


def _constant(name: str) -> Any:
    raise _Refused(f"has {name}, which is not a number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused("appears more than once", key)
            seen.add(key)
    return result


def _problem(value: Any, path: str) -> tuple[str, str] | None:
    """The path and the fault of the first refused number or unpaired surrogate."""
    if isinstance(value, _BadNumber):
        return path, value.message
    if isinstance(value, str):
        return (path, "has an unpaired surrogate") if _SURROGATE.search(value) else None
    items: Iterator[tuple[str, Any]] = iter(())
    if isinstance(value, dict):
        for key in value:
            if _SURROGATE.search(key):
                return path or "body", "has a name with an unpaired surrogate"
        items = ((f"{path}.{key}" if path else key, item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    for item_path, item in items:
        if (found := _problem(item, item_path)) is not None:
            return found
    return None


def nesting(text: str) -> int:
    """How deep the arrays and objects of `text` nest, strings left out."""
    brackets = _BRACKETS.findall(_STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def parse_json(raw: bytes | str, *, field: str = "body", max_bytes: int = 1 << 20) -> Any:
    """Parse `raw` by the rules above; `field` names it in errors (body, cursor, …)."""

    def refuse(message: str, where: str | None = None) -> ApiError:
        name = where or field
        return ApiError(
            400,
            "invalid_json",
            f"{field} is not valid JSON: {name} {message}",
            [FieldError(name, message)],
        )

    if len(raw) > max_bytes:
        raise refuse(f"is over {max_bytes} bytes")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise refuse(f"is not UTF-8 (byte {exc.start})") from None
    else:
        text = raw
    # Fewer brackets than the limit cannot nest past it, wherever they are.
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    if deep and (depth := nesting(text)) > MAX_DEPTH:
        raise refuse(f"nests {depth} levels deep, more than {MAX_DEPTH}")
    numbers_refused = False

    def checked(number: int | Decimal | _BadNumber) -> int | Decimal | _BadNumber:
        nonlocal numbers_refused
        numbers_refused = numbers_refused or isinstance(number, _BadNumber)
        return number

    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=lambda literal: checked(_int(literal)),
            parse_float=lambda literal: checked(_float(literal)),
            parse_constant=_constant,
        )
    except _Refused as exc:
        raise refuse(exc.message, exc.path) from None
    except ValueError as exc:
        raise refuse(f"is malformed: {exc}") from None
    # Only an escape can make a surrogate, so most bodies are not walked at all.
    if numbers_refused or "\\u" in text:
        found = _problem(value, "")
        if found is not None:
            raise refuse(found[1], found[0] or None)
    return value
