"""How decimals, timestamps and paging cursors are written in the API's JSON."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from order_engine.api.errors import ApiError
from order_engine.api.serialize import decode_cursor, encode_cursor
from order_engine.formats import decimal_str, timestamp_str
from order_engine.store.orders import WalletCursor


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.5", "1.5"),
        ("1.500", "1.5"),
        ("1.50E+3", "1500"),
        ("1E+2", "100"),
        ("100", "100"),
        ("0.000001", "0.000001"),
        ("1E-10", "0.0000000001"),
        ("123456789.123456789", "123456789.123456789"),
        ("-1.2300", "-1.23"),
        ("0", "0"),
        ("0.000", "0"),
        ("0E+5", "0"),
    ],
)
def test_decimal_str_is_plain_notation_without_trailing_zeros(value: str, expected: str) -> None:
    assert decimal_str(Decimal(value)) == expected


@pytest.mark.parametrize("value", ["-0", "-0.00", "-0E-8"])
def test_decimal_str_writes_negative_zero_as_zero(value: str) -> None:
    # "-0" would read as a signed amount to clients comparing strings.
    assert decimal_str(Decimal(value)) == "0"


@pytest.mark.parametrize("value", ["1.5", "1E-9", "1000000000", "0.000123", "42.4200"])
def test_decimal_str_round_trips_exactly(value: str) -> None:
    # Clients parse these strings back into decimals; the value must survive unchanged.
    assert Decimal(decimal_str(Decimal(value))) == Decimal(value)


def test_timestamp_str_is_iso_utc_with_milliseconds() -> None:
    value = datetime(2026, 11, 24, 10, 15, 30, 123456, tzinfo=UTC)
    assert timestamp_str(value) == "2026-11-24T10:15:30.123Z"


def test_timestamp_str_truncates_rather_than_rounds_milliseconds() -> None:
    # Rounding .9995s up would move the time into the next second (or day).
    value = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert timestamp_str(value) == "2026-12-31T23:59:59.999Z"


def test_timestamp_str_always_writes_three_millisecond_digits() -> None:
    assert timestamp_str(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    assert timestamp_str(datetime(2026, 1, 2, 3, 4, 5, 7000, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.007Z"
    )


def test_timestamp_str_converts_other_offsets_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    value = datetime(2026, 1, 1, 1, 30, 0, 250000, tzinfo=plus_two)
    # 01:30 at +02:00 is the previous day in UTC.
    assert timestamp_str(value) == "2025-12-31T23:30:00.250Z"


def test_cursor_round_trips() -> None:
    cursor = WalletCursor(datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC), uuid.uuid4())
    text = encode_cursor(cursor)
    assert decode_cursor(text) == cursor
    # The cursor travels in a query string, so it must need no escaping there.
    assert "=" not in text
    assert "+" not in text
    assert "/" not in text


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a cursor",
        "%%%",
        _b64(b"not json"),
        _b64(b"\xff\xfe"),
        _b64(json.dumps(["2026-03-04T05:06:07+00:00"]).encode()),
        _b64(json.dumps(["yesterday", str(uuid.uuid4())]).encode()),
        _b64(json.dumps(["2026-03-04T05:06:07+00:00", "not-a-uuid"]).encode()),
        _b64(json.dumps([1, 2]).encode()),
        _b64(json.dumps(5).encode()),
        # A naive time cannot be compared with the stored timestamptz keyset.
        _b64(json.dumps(["2026-03-04T05:06:07", str(uuid.uuid4())]).encode()),
    ],
)
def test_bad_cursor_is_a_validation_error_on_cursor(text: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        decode_cursor(text)
    error = excinfo.value
    assert error.status == 400
    assert error.code == "validation_error"
    assert [d.field for d in error.details] == ["cursor"]


def test_decimal_str_keeps_more_than_28_digits() -> None:
    value = Decimal("123456789012345678901234567890.5")
    assert decimal_str(value) == "123456789012345678901234567890.5"
