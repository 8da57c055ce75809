"""Hypothesis strategies for what a hostile client sends: JSON nested too deep, number
literals that cost the earth to convert, decimals longer than any context, odd unicode,
duplicate keys, other encodings, and query and path values of every wrong shape.

Every value drawn here is invalid input, so that a test can insist on a 4xx (or a 4xxx
close) and on nothing being stored.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.support import WALLET, order_body

# The server is in the loop (deadline=None); derandomized so that CI sees the same cases.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ORDER_FIELDS = ("userWallet", "inputToken", "outputToken", "inputAmount", "slippageBps")


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# Number literals: each is valid JSON, and each would cost a naive parser or validator
# time, memory or precision.
huge_numbers = st.one_of(
    st.integers(4, 9).map(lambda n: "1e" + "9" * n),  # 1e9999: int() of it is quadratic
    st.integers(4, 9).map(lambda n: "-1E+" + "9" * n),
    st.integers(4, 9).map(lambda n: "1e-" + "9" * n),
    st.integers(41, 5000).map(lambda n: "9" * n),  # past any sane literal length
    st.integers(41, 400).map(lambda n: "0." + "0" * n + "1"),
    st.sampled_from(["1e99999999999999999999999", "123456789e999999999"]),
)

# Decimals with more digits than the 28 of the default context, the extra ones nonzero
# and beyond any token's decimals, short enough (<= 40 characters) to pass the length
# bound: only an exact count of the digits refuses them.
long_decimals = st.integers(29, 37).map(lambda n: "1." + "0" * (n - 2) + "1")

odd_strings = st.one_of(
    st.sampled_from(
        [
            "\ud800",  # unpaired surrogates, escaped in the JSON text
            "\udfff",
            "ok\ud83d",
            "\u202eLOS",  # right-to-left override
            "S\u200bOL",  # zero-width space
            "\ufeffSOL",
            "\uff11\uff0e\uff15",  # fullwidth 1.5
            "\u0661\u066b\u0665",  # Arabic-Indic 1.5
            "1_000",
            "Infinity",
            "NaN",
            "0x10",
            "",
            " ",
            "\x00",
        ]
    ),
    st.text(min_size=45, max_size=2000),  # longer than any address, token or amount
)


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """An order body, or what pretends to be one, that must be refused."""
    body = order_body()
    kind = draw(
        st.sampled_from(
            [
                "deep_body",
                "deep_field",
                "huge_number",
                "long_decimal",
                "odd_string",
                "duplicate_key",
                "other_encoding",
                "not_utf8",
                "not_an_object",
                "wrong_type",
            ]
        )
    )
    field = draw(st.sampled_from(ORDER_FIELDS))
    if kind == "deep_body":
        return _nested(draw(st.integers(17, 20_000)), json.dumps(body)).encode()
    if kind == "deep_field":
        return _with_raw(body, field, _nested(draw(st.integers(17, 5000))))
    if kind == "huge_number":
        return _with_raw(
            body, draw(st.sampled_from(["inputAmount", "slippageBps"])), draw(huge_numbers)
        )
    if kind == "long_decimal":
        literal = draw(long_decimals)
        as_string = draw(st.booleans())
        return _with_raw(body, "inputAmount", json.dumps(literal) if as_string else literal)
    if kind == "odd_string":
        return json.dumps({**body, field: draw(odd_strings)}).encode()
    if kind == "duplicate_key":
        text = json.dumps(body)
        extra = json.dumps(draw(st.sampled_from(["2", "0", "x"])))
        return (text[:-1] + f', "{field}": {extra}}}').encode()
    if kind == "other_encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
        return json.dumps(body).encode(codec)
    if kind == "not_utf8":
        raw = json.dumps(body).encode()
        bad = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe9"]))
        at = draw(st.integers(1, len(raw) - 1))
        return raw[:at] + bad + raw[at:]
    if kind == "not_an_object":
        return draw(st.sampled_from([b"[]", b"1", b'"order"', b"null", b"", b"{", b"}"]))
    return json.dumps({**body, field: draw(st.sampled_from([[], {}, None, True, [1]]))}).encode()


def _with_raw(body: dict[str, Any], field: str, literal: str) -> bytes:
    """`body` with `field` set to `literal`, written into the JSON text as it is."""
    text = json.dumps({**body, field: "\x00PLACEHOLDER\x00"})
    return text.replace(json.dumps("\x00PLACEHOLDER\x00"), literal).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


hostile_cursors = st.one_of(
    st.integers(17, 3000).map(lambda n: _b64(_nested(n).encode())),
    huge_numbers.map(lambda lit: _b64(f"[{lit}, 1]".encode())),
    st.sampled_from(
        [
            # Times Postgres would refuse or Python cannot hold in UTC.
            ["0001-01-01T00:00:00+05:00", "3f0c1a52-3d0e-4a59-9a8e-6f1f8d2b9c11"],
            ["9999-12-31T23:59:59-05:00", "3f0c1a52-3d0e-4a59-9a8e-6f1f8d2b9c11"],
            ["2026-11-24T10:15:30", "3f0c1a52-3d0e-4a59-9a8e-6f1f8d2b9c11"],
            ["2026-11-24T10:15:30+00:00", "not-a-uuid"],
            [1, 2],
            {"a": 1},
            ["2026-11-24T10:15:30+00:00"],
        ]
    ).map(lambda value: _b64(json.dumps(value).encode())),
    st.text(min_size=1, max_size=300).filter(lambda s: s.strip() != ""),
    st.sampled_from(["%%%", "a" * 5000, _b64(b'["a", "b", "c"]'), _b64(b'["\\ud800", 1]')]),
)

# Integer parameters (limit, since): too large for Postgres, not ASCII, not integers.
hostile_integers = st.one_of(
    st.integers(2**31, 2**80).map(str),
    st.integers(-(2**40), -1).map(str),
    st.integers(5, 5000).map(lambda n: "9" * n),
    st.sampled_from(
        [
            "1e3",
            "1.5",
            "0x10",
            "\u0661\u0662",
            "\uff11\uff12",
            "1_0",
            " 5",
            "5 ",
            "+",
            "-",
            "",
            "NaN",
        ]
    ),
)

hostile_amounts = st.one_of(
    huge_numbers,
    long_decimals,
    odd_strings,
    st.sampled_from(["0", "-1", "1e40", "0.0000000001", "1" * 41]),
)

hostile_wallets = st.one_of(
    odd_strings,
    st.text(
        alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
        min_size=45,
        max_size=5000,
    ),
    st.sampled_from([WALLET[:-4], WALLET + "1", "0OIl" * 11, WALLET.upper()]),
)

hostile_order_ids = st.one_of(
    st.text(min_size=1, max_size=100).filter(lambda s: "/" not in s and s not in (".", "..")),
    st.sampled_from(
        ["3f0c1a52-3d0e-4a59-9a8e-6f1f8d2b9c1", "{3f0c1a52-3d0e-4a59-9a8e-6f1f8d2b9c11}"]
    ),
)
