"""Request bodies and query parameters: structured with cattrs, checked field by field.

Every problem in a request is reported at once, each with the camelCase field it is in.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import base58
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from order_engine.api.errors import ApiError, FieldError, validation_error
from order_engine.api.strict_json import bounded_decimal
from order_engine.domain.orders import NewOrder, OrderStatus, OrderType
from order_engine.routing.tokens import TOKENS, Token

DEFAULT_SLIPPAGE_BPS = 50
MAX_SLIPPAGE_BPS = 5000
DEFAULT_RESTING_LIFETIME = timedelta(hours=24)
# Large enough for any pool worth simulating, small enough that a reserve in base units
# fits the 28 digits of the default decimal context (9 decimals at most).
MAX_POOL_RESERVE = Decimal(10) ** 15
# A price far past any pool's and no finer than the engine's prices (18 digits): the
# limit times an amount then stays exact and finite.
MAX_LIMIT_PRICE = Decimal(10) ** 15
LIMIT_PRICE_DECIMALS = 18
UUID_PATTERN = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
_UUID_RE = re.compile(UUID_PATTERN)
CLIENT_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
CLIENT_ORDER_ID_RULE = "must be 1 to 64 letters, digits or . _ : -"
# Sequence numbers and page sizes are Postgres integers.
MAX_SEQ = 2**31 - 1
# Decimal() also takes underscores, other scripts' digits and "Infinity"; a request may not.
_DECIMAL_STRING = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_INTEGER_STRING = re.compile(r"-?\d{1,18}", re.ASCII)
# A base58 address of 32 bytes has 32 to 44 characters; longer ones are refused before
# decoding, whose cost grows with the square of the length.
_ADDRESS_LENGTHS = range(32, 45)
MAX_TIMESTAMP_CHARS = 40


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@attrs.frozen
class OrderBody:
    """The order body as sent, typed but not yet checked against the rules."""

    user_wallet: str
    input_token: str
    output_token: str
    input_amount: Decimal
    type: str = OrderType.MARKET.value
    slippage_bps: int = DEFAULT_SLIPPAGE_BPS
    limit_price: Decimal | None = None
    expires_at: str | None = None
    client_order_id: str | None = None


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError("must be a string")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise TypeError("must be an integer")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise TypeError("must be an integer")
    return int(value)


def _decimal(value: Any, _: type) -> Decimal:
    """A JSON number (already bounded and exact, see strict_json) or a decimal string,
    bounded the same way before it is converted."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise TypeError("must be a number or a decimal string")
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_STRING.fullmatch(text):
            raise ValueError("must be a number or a decimal string")
        number = bounded_decimal(text)
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise ValueError("must be finite")
    return number


_renames: dict[str, Any] = {a.name: override(rename=camel(a.name)) for a in attrs.fields(OrderBody)}
_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
_converter.register_structure_hook(str, _strict_str)
_converter.register_structure_hook(int, _strict_int)
_converter.register_structure_hook(Decimal, _decimal)
_converter.register_structure_hook(
    OrderBody,
    make_dict_structure_fn(
        OrderBody,
        _converter,
        _cattrs_forbid_extra_keys=True,
        **_renames,
    ),
)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "is required"
    return str(exc) or "is invalid"


def _structure_errors(exc: BaseException) -> list[FieldError]:
    if isinstance(exc, ForbiddenExtraKeysError):
        return [FieldError(name, "is not a known field") for name in sorted(exc.extra_fields)]
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        errors = [FieldError(camel(note.name), _message(sub)) for sub, note in with_notes]
        for sub in without:
            errors.extend(_structure_errors(sub))
        return errors
    return [FieldError("body", _message(exc))]


# A wallet sends many orders: its address is decoded once, not on each of them.
@functools.lru_cache(maxsize=4096)
def is_solana_address(value: str) -> bool:
    if len(value) not in _ADDRESS_LENGTHS:
        return False
    try:
        return len(base58.b58decode(value)) == 32
    except ValueError:
        return False


def decimal_places(value: Decimal) -> int:
    """Digits after the point, trailing zeros not counted: counted on the digits
    themselves, so exact at any length (normalize() would round to the context's 28)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    significant = "".join(map(str, digits)).rstrip("0")
    trailing_zeros = len(digits) - len(significant)
    return max(0, -(exponent + trailing_zeros))


_ORDER_TYPES = frozenset(OrderType)
_ORDER_TYPES_RULE = "must be one of " + ", ".join(t.value for t in OrderType)
_TOKENS_RULE = "must be one of " + ", ".join(TOKENS)


def _check(errors: list[FieldError], field: str, ok: bool, message: str) -> bool:
    if not ok:
        errors.append(FieldError(field, message))
    return ok


def _amount_rules(
    errors: list[FieldError], amount: Decimal, input_token: str, max_input_amount: Decimal
) -> None:
    # Messages are written only for a failed rule: most bodies pass them all.
    if not amount > 0:
        errors.append(FieldError("inputAmount", "must be greater than 0"))
    elif not amount <= max_input_amount:
        errors.append(FieldError("inputAmount", f"must be at most {max_input_amount}"))
    elif (token := TOKENS.get(input_token)) is not None and decimal_places(amount) > token.decimals:
        errors.append(
            FieldError(
                "inputAmount", f"has more than the {token.decimals} decimals of {token.symbol}"
            )
        )


def _pair_rules(errors: list[FieldError], input_token: str, output_token: str) -> None:
    _check(errors, "inputToken", input_token in TOKENS, _TOKENS_RULE)
    _check(errors, "outputToken", output_token in TOKENS, _TOKENS_RULE)
    _check(errors, "outputToken", output_token != input_token, "must differ from inputToken")


def _limit_price_rules(errors: list[FieldError], price: Decimal) -> None:
    if not _check(errors, "limitPrice", price > 0, "must be greater than 0"):
        return
    if not _check(
        errors, "limitPrice", price <= MAX_LIMIT_PRICE, f"must be at most {MAX_LIMIT_PRICE}"
    ):
        return
    _check(
        errors,
        "limitPrice",
        decimal_places(price) <= LIMIT_PRICE_DECIMALS,
        f"has more than {LIMIT_PRICE_DECIMALS} decimals",
    )


def _resting_rules(errors: list[FieldError], body: OrderBody, now: datetime) -> datetime | None:
    """limitPrice and expiresAt; returns the expiry of a resting order. A sniper order
    may have a limit too: the worst price it buys at once its pool trades."""
    order_type = body.type
    if body.limit_price is not None:
        if _check(
            errors,
            "limitPrice",
            order_type != OrderType.MARKET,
            "only applies to limit and sniper orders",
        ):
            _limit_price_rules(errors, body.limit_price)
    elif order_type == OrderType.LIMIT:
        errors.append(FieldError("limitPrice", "is required for limit orders"))
    if body.expires_at is None:
        return None if order_type == OrderType.MARKET else now + DEFAULT_RESTING_LIFETIME
    if not _check(
        errors,
        "expiresAt",
        order_type != OrderType.MARKET,
        "only applies to limit and sniper orders",
    ):
        return None
    try:
        if len(body.expires_at) > MAX_TIMESTAMP_CHARS:
            raise ValueError
        expires = datetime.fromisoformat(body.expires_at.replace("Z", "+00:00"))
    except ValueError:
        errors.append(FieldError("expiresAt", "must be an ISO-8601 timestamp"))
        return None
    if expires.tzinfo is None:
        errors.append(FieldError("expiresAt", "must include a time zone (e.g. Z)"))
        return None
    try:
        # In UTC, as Postgres stores it: a time near year 1 or 9999 may not have one.
        expires = expires.astimezone(UTC)
    except OverflowError:
        errors.append(FieldError("expiresAt", "is out of range"))
        return None
    _check(errors, "expiresAt", expires > now, "must be in the future")
    return expires


def parse_order(
    payload: Any, *, max_input_amount: Decimal, now: datetime | None = None
) -> NewOrder:
    """Turn a decoded JSON body into a NewOrder, or raise a validation_error ApiError."""
    if not isinstance(payload, dict):
        raise validation_error([FieldError("body", "must be a JSON object")])
    try:
        body = _converter.structure(payload, OrderBody)
    except (ClassValidationError, ForbiddenExtraKeysError) as exc:
        raise validation_error(_structure_errors(exc)) from None

    errors: list[FieldError] = []
    _check(
        errors,
        "userWallet",
        is_solana_address(body.user_wallet),
        "must be a Solana address (base58 that decodes to 32 bytes)",
    )
    _pair_rules(errors, body.input_token, body.output_token)
    _amount_rules(errors, body.input_amount, body.input_token, max_input_amount)
    _check(errors, "type", body.type in _ORDER_TYPES, _ORDER_TYPES_RULE)
    _check(
        errors,
        "slippageBps",
        0 <= body.slippage_bps <= MAX_SLIPPAGE_BPS,
        f"must be between 0 and {MAX_SLIPPAGE_BPS}",
    )
    expires_at = _resting_rules(errors, body, now or datetime.now(UTC))
    if body.client_order_id is not None:
        _check(
            errors,
            "clientOrderId",
            bool(CLIENT_ORDER_ID_RE.match(body.client_order_id)),
            CLIENT_ORDER_ID_RULE,
        )
    if errors:
        raise validation_error(errors)
    return NewOrder(
        type=OrderType(body.type),
        user_wallet=body.user_wallet,
        input_token=body.input_token,
        output_token=body.output_token,
        input_amount=body.input_amount,
        slippage_bps=body.slippage_bps,
        limit_price=body.limit_price,
        expires_at=expires_at,
        client_order_id=body.client_order_id,
    )


@attrs.frozen
class QuoteQuery:
    input_token: Token
    output_token: Token
    input_amount: Decimal


def parse_quote_query(query: Mapping[str, str], *, max_input_amount: Decimal) -> QuoteQuery:
    """inputToken, outputToken and inputAmount of GET /api/quote, by the order body's rules."""
    errors: list[FieldError] = []
    fields = ("inputToken", "outputToken", "inputAmount")
    for name in sorted(set(query) - set(fields)):
        errors.append(FieldError(name, "is not a known parameter"))
    missing = [name for name in fields if not query.get(name)]
    errors.extend(FieldError(name, "is required") for name in missing)
    if missing:
        raise validation_error(errors)
    input_token, output_token = query["inputToken"], query["outputToken"]
    _pair_rules(errors, input_token, output_token)
    try:
        amount = _decimal(query["inputAmount"], Decimal)
    except (TypeError, ValueError) as exc:
        errors.append(FieldError("inputAmount", str(exc)))
    else:
        _amount_rules(errors, amount, input_token, max_input_amount)
    if errors:
        raise validation_error(errors)
    return QuoteQuery(TOKENS[input_token], TOKENS[output_token], amount)


def parse_order_id(raw: str) -> uuid.UUID:
    if not _UUID_RE.match(raw):
        raise ApiError(400, "invalid_order_id", f"{raw!r} is not an order id (a UUID)")
    return uuid.UUID(raw)


def parse_int_param(raw: str | None, field: str, *, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within bounds, or a validation_error naming it.

    Only ASCII digits, at most 18 of them, reach int(): it would also take other scripts'
    digits, underscores and thousands of digits."""
    if raw is None:
        return default
    if not _INTEGER_STRING.fullmatch(raw) or not low <= int(raw) <= high:
        raise validation_error([FieldError(field, f"must be an integer between {low} and {high}")])
    return int(raw)


def parse_status(raw: str | None, field: str = "status") -> OrderStatus | None:
    if raw is None:
        return None
    if raw not in set(OrderStatus):
        known = ", ".join(s.value for s in OrderStatus)
        raise validation_error([FieldError(field, f"must be one of {known}")])
    return OrderStatus(raw)


def parse_client_order_id(raw: str | None, field: str = "clientOrderId") -> str | None:
    if raw is None:
        return None
    if not CLIENT_ORDER_ID_RE.match(raw):
        raise validation_error([FieldError(field, CLIENT_ORDER_ID_RULE)])
    return raw


def parse_wallet(raw: str, field: str = "wallet") -> str:
    if not is_solana_address(raw):
        raise validation_error(
            [FieldError(field, "must be a Solana address (base58 that decodes to 32 bytes)")]
        )
    return raw


@attrs.frozen
class PoolBody:
    """`POST /api/dev/pools`: a new pool of `dex` with its opening reserves."""

    dex: str
    token_a: str
    token_b: str
    reserve_a: Decimal
    reserve_b: Decimal


_pool_renames: dict[str, Any] = {
    a.name: override(rename=camel(a.name)) for a in attrs.fields(PoolBody)
}
_converter.register_structure_hook(
    PoolBody,
    make_dict_structure_fn(PoolBody, _converter, _cattrs_forbid_extra_keys=True, **_pool_renames),
)


def parse_pool(payload: Any, *, dexes: tuple[str, ...]) -> PoolBody:
    """A pool launch body, or a validation_error naming every wrong field."""
    if not isinstance(payload, dict):
        raise validation_error([FieldError("body", "must be a JSON object")])
    try:
        body = _converter.structure(payload, PoolBody)
    except (ClassValidationError, ForbiddenExtraKeysError) as exc:
        raise validation_error(_structure_errors(exc)) from None
    errors: list[FieldError] = []
    _check(errors, "dex", body.dex in dexes, f"must be one of {', '.join(dexes)}")
    for field, symbol, reserve in (
        ("tokenA", body.token_a, body.reserve_a),
        ("tokenB", body.token_b, body.reserve_b),
    ):
        if _check(errors, field, symbol in TOKENS, _TOKENS_RULE):
            token = TOKENS[symbol]
            reserve_field = field.replace("token", "reserve")
            if _check(
                errors,
                reserve_field,
                reserve >= token.unit,
                f"must be at least one base unit of {symbol} ({token.unit})",
            ) and _check(
                errors,
                reserve_field,
                decimal_places(reserve) <= token.decimals,
                f"has more than the {token.decimals} decimals of {symbol}",
            ):
                _check(
                    errors,
                    reserve_field,
                    reserve <= MAX_POOL_RESERVE,
                    f"must be at most {MAX_POOL_RESERVE}",
                )
    _check(errors, "tokenB", body.token_b != body.token_a, "must differ from tokenA")
    if errors:
        raise validation_error(errors)
    return body
