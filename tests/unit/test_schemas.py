"""Validation of order bodies and parameters: every problem named by its camelCase field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from order_engine.api.errors import ApiError
from order_engine.api.schemas import (
    DEFAULT_SLIPPAGE_BPS,
    MAX_SLIPPAGE_BPS,
    camel,
    is_solana_address,
    parse_int_param,
    parse_order,
    parse_order_id,
    parse_wallet,
)
from order_engine.api.strict_json import parse_json
from order_engine.domain.orders import OrderType
from tests.support import WALLET, order_body

MAX = Decimal("1000000")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def rejected(payload: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_order(payload, max_input_amount=MAX, now=NOW)
    assert info.value.status == 400
    return info.value


def fields_of(error: ApiError) -> set[str]:
    assert error.code == "validation_error"
    return {detail.field for detail in error.details}


def test_a_valid_market_order_is_parsed_with_defaults() -> None:
    order = parse_order(order_body(), max_input_amount=MAX, now=NOW)
    assert order.type == OrderType.MARKET
    assert order.user_wallet == WALLET
    assert (order.input_token, order.output_token) == ("SOL", "USDC")
    assert order.input_amount == Decimal("1.5")
    assert order.slippage_bps == DEFAULT_SLIPPAGE_BPS
    assert order.limit_price is None
    assert order.expires_at is None


def test_amount_may_be_a_json_number_or_a_decimal_string() -> None:
    from_number = parse_order(
        parse_json(
            b'{"userWallet": "%s", "inputToken": "SOL", "outputToken": "USDC",'
            b' "inputAmount": 0.1}' % WALLET.encode()
        ),
        max_input_amount=MAX,
        now=NOW,
    )
    from_string = parse_order(order_body(inputAmount="0.1"), max_input_amount=MAX, now=NOW)
    # Exact decimals: a float would have made this 0.1000000000000000055...
    assert from_number.input_amount == from_string.input_amount == Decimal("0.1")


def test_every_problem_is_reported_at_once() -> None:
    error = rejected(
        order_body(
            userWallet="not-a-wallet",
            inputToken="DOGE",
            outputToken="SOL",
            inputAmount="-1",
            slippageBps=MAX_SLIPPAGE_BPS + 1,
        )
    )
    assert fields_of(error) == {"userWallet", "inputToken", "inputAmount", "slippageBps"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"userWallet": "1111"}, "userWallet"),
        ({"userWallet": 42}, "userWallet"),
        ({"inputToken": "NOPE"}, "inputToken"),
        ({"outputToken": "SOL"}, "outputToken"),
        ({"inputAmount": "0"}, "inputAmount"),
        ({"inputAmount": "abc"}, "inputAmount"),
        ({"inputAmount": "Infinity"}, "inputAmount"),
        ({"inputAmount": True}, "inputAmount"),
        ({"inputAmount": "1000000.5"}, "inputAmount"),
        ({"inputAmount": "0.0000000001"}, "inputAmount"),
        ({"slippageBps": -1}, "slippageBps"),
        ({"slippageBps": 1.5}, "slippageBps"),
        ({"slippageBps": "50"}, "slippageBps"),
        ({"type": "stop"}, "type"),
        ({"type": "limit"}, "limitPrice"),
        ({"type": "limit", "limitPrice": "0"}, "limitPrice"),
        ({"type": "limit", "limitPrice": "1e16"}, "limitPrice"),
        ({"type": "limit", "limitPrice": "0.0000000000000000001"}, "limitPrice"),
        ({"limitPrice": "100"}, "limitPrice"),
        ({"expiresAt": "2030-01-01T00:00:00Z"}, "expiresAt"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_each_wrong_field_is_named(changes: dict[str, Any], field: str) -> None:
    assert field in fields_of(rejected(order_body(**changes)))


@pytest.mark.parametrize("missing", ["userWallet", "inputToken", "outputToken", "inputAmount"])
def test_a_missing_required_field_is_named(missing: str) -> None:
    body = order_body()
    del body[missing]
    error = rejected(body)
    assert fields_of(error) == {missing}
    assert error.details[0].message == "is required"


def test_usdc_amounts_are_limited_to_six_decimals() -> None:
    body = order_body(inputToken="USDC", outputToken="SOL", inputAmount="1.0000001")
    assert fields_of(rejected(body)) == {"inputAmount"}
    ok = order_body(inputToken="USDC", outputToken="SOL", inputAmount="1.000001")
    assert parse_order(ok, max_input_amount=MAX, now=NOW).input_amount == Decimal("1.000001")


def test_trailing_zeros_do_not_count_as_decimals() -> None:
    body = order_body(inputToken="USDC", outputToken="SOL", inputAmount="2.50000000000")
    assert parse_order(body, max_input_amount=MAX, now=NOW).input_amount == Decimal("2.5")


@pytest.mark.parametrize("payload", [[], "order", 3, None])
def test_a_body_that_is_not_an_object_is_refused(payload: Any) -> None:
    assert fields_of(rejected(payload)) == {"body"}


def test_a_limit_order_has_its_limit_and_a_deadline_of_a_day_by_default() -> None:
    order = parse_order(
        order_body(type="limit", limitPrice="150.25"), max_input_amount=MAX, now=NOW
    )
    assert order.type is OrderType.LIMIT
    assert order.limit_price == Decimal("150.25")
    assert order.expires_at == NOW + timedelta(hours=24)


def test_a_sniper_order_may_have_a_limit_and_a_deadline_of_its_own() -> None:
    later = NOW + timedelta(minutes=5)
    bare = parse_order(
        order_body(type="sniper", outputToken="POPCAT"), max_input_amount=MAX, now=NOW
    )
    capped = parse_order(
        order_body(
            type="sniper",
            outputToken="POPCAT",
            limitPrice="1000",
            expiresAt=later.isoformat().replace("+00:00", "Z"),
        ),
        max_input_amount=MAX,
        now=NOW,
    )
    assert (bare.type, bare.limit_price, bare.expires_at) == (
        OrderType.SNIPER,
        None,
        NOW + timedelta(hours=24),
    )
    assert (capped.limit_price, capped.expires_at) == (Decimal("1000"), later)


def test_expiry_must_have_a_zone_and_lie_in_the_future() -> None:
    naive = rejected(order_body(type="sniper", expiresAt="2030-01-01T00:00:00"))
    past = rejected(order_body(type="sniper", expiresAt="2020-01-01T00:00:00Z"))
    garbage = rejected(order_body(type="sniper", expiresAt="tomorrow"))
    for error in (naive, past, garbage):
        assert "expiresAt" in fields_of(error)


def test_parse_json_keeps_numbers_exact() -> None:
    assert parse_json(b'{"a": 0.30000000000000004}') == {"a": Decimal("0.30000000000000004")}


@pytest.mark.parametrize("raw", [b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe"])
def test_parse_json_refuses_what_is_not_strict_json(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_json(raw)
    assert (info.value.status, info.value.code) == (400, "invalid_json")


def test_order_ids_must_be_uuids() -> None:
    value = uuid.uuid4()
    assert parse_order_id(str(value)) == value
    for raw in ["123", "", f"{value}x", str(value).replace("-", "")]:
        with pytest.raises(ApiError) as info:
            parse_order_id(raw)
        assert (info.value.status, info.value.code) == (400, "invalid_order_id")


@pytest.mark.parametrize(("raw", "expected"), [(None, 50), ("1", 1), ("200", 200)])
def test_int_params_within_bounds(raw: str | None, expected: int) -> None:
    assert parse_int_param(raw, "limit", default=50, low=1, high=200) == expected


@pytest.mark.parametrize("raw", ["0", "201", "ten", "1.5", ""])
def test_int_params_out_of_bounds_name_the_parameter(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_int_param(raw, "limit", default=50, low=1, high=200)
    assert fields_of(info.value) == {"limit"}


def test_wallets_are_base58_of_32_bytes() -> None:
    assert is_solana_address(WALLET)
    assert parse_wallet(WALLET) == WALLET
    for raw in ["", "0OIl", WALLET[:-4], WALLET + "1"]:
        assert not is_solana_address(raw)
    with pytest.raises(ApiError) as info:
        parse_wallet("nope")
    assert fields_of(info.value) == {"wallet"}


def test_camel_case_names() -> None:
    assert camel("user_wallet") == "userWallet"
    assert camel("slippage_bps") == "slippageBps"
    assert camel("type") == "type"
