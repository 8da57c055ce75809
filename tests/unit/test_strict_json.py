"""The bounded parser every client input goes through: what it refuses, naming where,
and that it returns what any other JSON parser would for everything it accepts."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_engine.api.errors import ApiError
from order_engine.api.strict_json import (
    MAX_DEPTH,
    MAX_NUMBER_CHARS,
    bounded_decimal,
    nesting,
    parse_json,
)
from tests.hostile import FUZZ, hostile_bodies


def refused(raw: bytes | str, field: str = "body") -> tuple[str, str]:
    """The (field, message) of the one detail of the 400 invalid_json `raw` gets."""
    with pytest.raises(ApiError) as info:
        parse_json(raw, field=field)
    error = info.value
    assert (error.status, error.code) == (400, "invalid_json")
    assert len(error.details) == 1
    return error.details[0].field, error.details[0].message


def test_nesting_up_to_the_limit_is_accepted_and_one_more_level_refused() -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert nesting(deepest) == MAX_DEPTH
    assert parse_json(deepest) is not None
    field, message = refused("[" + deepest + "]")
    assert field == "body"
    assert str(MAX_DEPTH) in message


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"a": "[" * 1000, "b": 'x\\"[[[' + "{" * 100})
    assert nesting(text) == 1
    assert parse_json(text)["a"] == "[" * 1000


def test_nesting_is_refused_before_the_recursive_parser_sees_it() -> None:
    """100,000 levels: json.loads would raise RecursionError (a 500 before)."""
    assert refused("[" * 100_000)[0] == "body"
    assert refused(json.dumps({"inputAmount": 1})[:-1] + ', "x": ' + "{" * 50_000)[0] == "body"


def test_duplicate_keys_are_refused_naming_the_key() -> None:
    assert refused(b'{"inputAmount": "1", "inputAmount": "2"}') == (
        "inputAmount",
        "appears more than once",
    )
    assert refused(b'{"a": {"b": 1, "b": 1}}')[0] == "b"


@pytest.mark.parametrize(
    ("literal", "path"),
    [
        ("1e999999999", "amount"),
        ("-1E+9999", "amount"),
        ("1e-99999", "amount"),
        ("9" * (MAX_NUMBER_CHARS + 1), "amount"),
        ("0." + "0" * MAX_NUMBER_CHARS + "1", "amount"),
        ("1e99999999999999999999999", "amount"),
    ],
)
def test_number_literals_that_would_cost_are_refused_naming_the_field(
    literal: str, path: str
) -> None:
    field, message = refused(f'{{"amount": {literal}}}')
    assert field == path
    assert message


def test_refused_numbers_are_named_wherever_they_are() -> None:
    assert refused(b'{"a": [1, {"b": 1e99999}]}')[0] == "a[1].b"
    assert refused(b"[1, 1e99999]")[0] == "[1]"
    assert refused(b"1e99999")[0] == "body"


def test_numbers_stay_exact() -> None:
    value = parse_json(b'{"a": 0.30000000000000004, "b": 12, "c": -1.5e3}')
    assert value == {"a": Decimal("0.30000000000000004"), "b": 12, "c": Decimal("-1.5e3")}
    assert isinstance(value["b"], int)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_numbers_are_refused(constant: str) -> None:
    assert refused(f'{{"a": {constant}}}') == ("body", f"has {constant}, which is not a number")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32", "latin-1"])
def test_only_utf8_is_accepted(codec: str) -> None:
    raw = json.dumps({"token": "SOL\u00e9"}, ensure_ascii=False).encode(codec)
    assert refused(raw)[0] == "body"


def test_a_byte_order_mark_is_refused() -> None:
    assert refused(b"\xef\xbb\xbf{}")[0] == "body"


def test_unpaired_surrogates_are_refused_naming_the_field() -> None:
    assert refused(b'{"userWallet": "\\ud800"}') == ("userWallet", "has an unpaired surrogate")
    assert refused(b'{"a": ["ok", "\\udfff"]}')[0] == "a[1]"
    assert refused(b'{"\\ud800": 1}')[0] == "body"
    # A pair is one character, and fine.
    assert parse_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_size_is_bounded() -> None:
    with pytest.raises(ApiError) as info:
        parse_json(b"[" + b"1," * 100 + b"1]", field="cursor", max_bytes=100)
    assert info.value.details[0].field == "cursor"


def test_bounded_decimal_refuses_before_converting() -> None:
    assert bounded_decimal("12.5") == Decimal("12.5")
    for literal in ("1e400", "1e-41", "9" * (MAX_NUMBER_CHARS + 1), "abc"):
        with pytest.raises(ValueError, match=r"characters|range|decimal"):
            bounded_decimal(literal)


# Text without surrogates: a lone one is what the parser refuses.
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(-1e30, 1e30).filter(lambda f: f == 0 or abs(f) > 1e-30)
    | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@FUZZ
@given(value=json_values)
def test_what_is_within_bounds_parses_as_any_parser_would(value: Any) -> None:
    text = json.dumps(value, default=str, ensure_ascii=False)
    expected = json.loads(text, parse_float=Decimal)
    if _depth(expected) <= MAX_DEPTH:
        assert parse_json(text.encode()) == expected


@FUZZ
@given(raw=hostile_bodies())
def test_hostile_bodies_parse_to_something_bounded_or_are_refused(raw: bytes) -> None:
    """Whatever comes back has only bounded numbers; the rest is refused with a field."""
    try:
        value = parse_json(raw)
    except ApiError as exc:
        refusal: ApiError | None = exc
    else:
        refusal = None
    if refusal is not None:
        assert refusal.code == "invalid_json"
        assert refusal.details
        return
    assert _depth(value) <= MAX_DEPTH

    def numbers(node: Any) -> list[int | Decimal]:
        if isinstance(node, dict):
            return [n for item in node.values() for n in numbers(item)]
        if isinstance(node, list):
            return [n for item in node for n in numbers(item)]
        return [node] if isinstance(node, int | Decimal) and not isinstance(node, bool) else []

    for number in numbers(value):
        assert abs(Decimal(number).adjusted()) <= MAX_NUMBER_CHARS
