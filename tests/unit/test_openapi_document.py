"""The OpenAPI document against the code it describes: the attrs classes, the serialisers,
the validators' constants and every error code a handler can raise."""

from __future__ import annotations

import ast
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

import order_engine
from order_engine.api.errors import DOMAIN_ERRORS
from order_engine.api.openapi import ERROR_CODES, document
from order_engine.api.schemas import (
    MAX_LIMIT_PRICE,
    MAX_SLIPPAGE_BPS,
    OrderBody,
    PoolBody,
    camel,
    parse_order,
    parse_quote_query,
)
from order_engine.api.serialize import order_json, quote_json, route_json
from order_engine.config import Settings
from order_engine.domain.orders import Order, OrderStatus, OrderType
from order_engine.domain.routes import SPLIT, TWO_HOP, Quote, Route
from order_engine.metrics import RecentOrders
from tests.support import WALLET, order_body, schema_errors

DOCUMENT = document(Settings())
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]


def quote(dex: str, src: str, dst: str, amount_in: str, amount_out: str) -> Quote:
    return Quote(dex, src, dst, Decimal(amount_in), Decimal(amount_out), 25, Decimal("1.5"))


def an_order(**changes: Any) -> Order:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "type": OrderType.MARKET,
        "status": OrderStatus.CONFIRMED,
        "user_wallet": WALLET,
        "input_token": "SOL",
        "output_token": "USDC",
        "input_amount": Decimal("1.5"),
        "slippage_bps": 50,
        "limit_price": None,
        "expires_at": None,
        "dex": "split",
        "quoted_amount_out": Decimal("224.5"),
        "min_amount_out": Decimal("223.38"),
        "amount_out": Decimal("224.4"),
        "executed_price": Decimal("149.6"),
        "tx_hash": "5VfY",
        "attempts": 1,
        "failure_code": None,
        "failure_reason": None,
        "created_at": now,
        "updated_at": now,
    }
    return Order(**{**fields, **changes})


@pytest.mark.parametrize(("schema", "cls"), [("OrderBody", OrderBody), ("PoolBody", PoolBody)])
def test_request_bodies_are_their_attrs_classes(schema: str, cls: type) -> None:
    """Every attribute is a property, required exactly when it has no default, and nothing
    else is allowed (the converter forbids extra keys)."""
    body = SCHEMAS[schema]
    fields = attrs.fields(cls)
    assert list(body["properties"]) == [camel(f.name) for f in fields]
    assert body["required"] == [camel(f.name) for f in fields if f.default is attrs.NOTHING]
    assert body["additionalProperties"] is False


def test_order_body_bounds_are_the_validators() -> None:
    """The bounds and enums that the issue found copied by hand come from the code: the
    order types, the slippage and limit price bounds, MAX_INPUT_AMOUNT of the settings."""
    properties = SCHEMAS["OrderBody"]["properties"]
    assert properties["type"]["enum"] == [t.value for t in OrderType]
    assert properties["slippageBps"]["maximum"] == MAX_SLIPPAGE_BPS
    limit = properties["limitPrice"]["oneOf"][0]["oneOf"][0]
    assert limit["maximum"] == int(MAX_LIMIT_PRICE)
    small = document(Settings(max_input_amount=Decimal(500)))
    amount = small["components"]["schemas"]["OrderBody"]["properties"]["inputAmount"]
    assert amount["oneOf"][0]["maximum"] == 500
    with pytest.raises(Exception, match="at most 500"):
        parse_order(order_body(inputAmount="501"), max_input_amount=Decimal(500))


def test_an_order_as_serialised_fits_the_closed_order_schema() -> None:
    """order_json writes every attribute of Order and nothing the schema lacks; a failed
    order (nulls, failure code) fits too."""
    assert schema_errors(DOCUMENT, "Order", order_json(an_order())) == []
    failed = an_order(
        status=OrderStatus.FAILED,
        dex=None,
        quoted_amount_out=None,
        min_amount_out=None,
        amount_out=None,
        executed_price=None,
        tx_hash=None,
        failure_code="no_route",
        failure_reason="no venue quotes SOL -> USDC",
    )
    assert schema_errors(DOCUMENT, "Order", order_json(failed)) == []
    assert schema_errors(DOCUMENT, "Order", {**order_json(an_order()), "extra": 1}) != []


def test_quotes_and_routes_as_events_carry_them_fit_the_closed_schemas() -> None:
    """quote_json and route_json (the routing event's quotes and route, /api/quote's body)
    write exactly the documented keys: fee, kind, wrapSol, unwrapSol and the legs'
    feeBps and priceImpactBps included."""
    one = quote("raydium", "SOL", "USDC", "1", "150")
    assert schema_errors(DOCUMENT, "Quote", quote_json(one)) == []
    split = Route(SPLIT, (one, quote("meteora", "SOL", "USDC", "1", "149")), Decimal(299))
    path = Route(
        TWO_HOP,
        (quote("meteora", "JUP", "USDC", "5", "4"), quote("raydium", "USDC", "SOL", "4", "0.02")),
        Decimal("0.02"),
    )
    for route in (split, path):
        data = route_json(route)
        assert schema_errors(DOCUMENT, "Route", data) == []
        assert set(data) == set(SCHEMAS["Route"]["required"])
        for leg in data["legs"]:
            assert set(leg) == set(SCHEMAS["Route"]["properties"]["legs"]["items"]["required"])


def test_quote_amount_pattern_takes_every_token_decimal_the_server_takes() -> None:
    """The issue's drift: the pattern allowed 6 decimals while SOL has 9."""
    (amount,) = [
        p
        for p in DOCUMENT["paths"]["/api/quote"]["get"]["parameters"]
        if p["name"] == "inputAmount"
    ]
    pattern = amount["schema"]["pattern"]
    query = {"inputToken": "SOL", "outputToken": "USDC", "inputAmount": "1.123456789"}
    parse_quote_query(query, max_input_amount=Decimal(10))
    validator_schema = {"type": "string", "pattern": pattern}
    assert (
        schema_errors({"components": {"schemas": {"q": validator_schema}}}, "q", "1.123456789")
        == []
    )


def test_production_document_leaves_out_the_development_routes() -> None:
    assert "/api/dev/pools" in DOCUMENT["paths"]
    assert "/api/dev/pools" not in document(Settings(app_env="production"))["paths"]


def raised_error_codes() -> set[tuple[int, str]]:
    """(status, code) of every ApiError built with literal arguments anywhere in the
    package, with the tables that map domain errors and aiohttp's own errors."""
    found: set[tuple[int, str]] = {(400, "validation_error")}
    for path in Path(order_engine.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "ApiError"
                and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) for a in node.args[:2])
            ):
                found.add((ast.literal_eval(node.args[0]), ast.literal_eval(node.args[1])))
            if isinstance(node, ast.Dict) and path.name == "errors.py":
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Tuple):
                        first = value.elts[0]
                        if isinstance(first, ast.Constant) and isinstance(first.value, str):
                            found.add((ast.literal_eval(key), first.value))
    found.update(DOMAIN_ERRORS.values())
    return found


def test_every_error_code_the_server_raises_is_documented_and_no_other() -> None:
    documented = {(status, code) for status, codes in ERROR_CODES.items() for code in codes}
    assert raised_error_codes() == documented


def test_recent_orders_count_each_second_and_give_confirmed_latency_percentiles() -> None:
    """The window behind /api/stats: the second still counting is left out, seconds
    without orders are zeros, old seconds fall out."""
    now = [1000.2]
    recent = RecentOrders(window_s=5, clock=lambda: now[0])
    recent.accepted()
    for latency in (0.010, 0.020, 0.030, 0.040):
        recent.finished(OrderStatus.CONFIRMED, latency)
    recent.finished(OrderStatus.FAILED, 0.5)
    now[0] = 1002.5
    recent.accepted()
    series = recent.series()
    assert [s.at for s in series] == [998, 999, 1000, 1001]
    counted = series[2]
    assert (counted.accepted, counted.confirmed, counted.failed) == (1, 4, 1)
    assert (counted.percentile_ms(0.5), counted.percentile_ms(0.9)) == (20.0, 40.0)
    assert series[3].percentile_ms(0.5) is None
    now[0] = 1010.0
    assert all(s.accepted == s.confirmed == 0 for s in recent.series())
