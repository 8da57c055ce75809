"""docs/api.md against the code: its tables of routes, status codes, error codes, socket
messages, close codes and event data say what the server does, no more and no less."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import order_engine.api
from order_engine.api.asyncapi import CLOSE_CODES
from order_engine.api.asyncapi import document as asyncapi_document
from order_engine.api.openapi import ERROR_CODES, EVENT_DATA, document
from order_engine.config import Settings
from tests.support import api_routes, page_routes

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
OPENAPI = document(Settings())


def table(heading: str, first_column: str) -> list[list[str]]:
    """The rows of the table under `heading` whose first column is titled `first_column`."""
    section = API_MD.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows: list[list[str]] = []
    inside = False
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else []
        if cells and cells[0] == first_column:
            inside = True
        elif inside and not cells:
            break
        elif inside and not set(cells[0]) <= {"-"}:
            rows.append(cells)
    assert rows, f"no table {first_column!r} under {heading!r}"
    return rows


def code(cell: str) -> str:
    return cell.strip("`")


def numbers(cell: str) -> set[str]:
    return set(re.findall(r"\d{3}", cell))


def test_routes_and_their_status_codes_are_the_documents() -> None:
    """Every route of the API, with the success and error statuses the OpenAPI document
    (generated from the code, held to the server by schemathesis) gives it."""
    rows = table("Routes", "route")
    assert {tuple(code(r[0]).split(" ")) for r in rows} == api_routes()
    for route, success, errors, _ in rows:
        method, path = code(route).split(" ")
        responses = set(OPENAPI["paths"][path][method.lower()]["responses"])
        assert numbers(success) | numbers(errors) == responses, route
        assert all(int(s) < 300 for s in numbers(success)), route


def test_browser_pages_are_the_registered_ones() -> None:
    listed = {re.sub(r"/\{file\}$", "", code(r[0])) for r in table("Routes", "page")}
    assert {tuple(page.split(" ")) for page in listed} == page_routes()


def test_error_codes_are_every_code_the_server_answers_with() -> None:
    listed = {(int(r[0]), code(r[1])) for r in table("Errors", "status")}
    assert listed == {(status, c) for status, codes in ERROR_CODES.items() for c in codes}


def sent_message_types() -> set[str]:
    """The `type` of every message literal the API's modules send."""
    found: set[str] = set()
    for path in Path(order_engine.api.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "type"
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                        and path.name not in {"openapi.py", "asyncapi.py"}
                    ):
                        found.add(value.value)
    return found


def test_socket_messages_are_those_the_server_sends_and_asyncapi_describes() -> None:
    rows = table("WebSockets", "message")
    from_server = {code(r[0]) for r in rows if r[1] == "server"}
    assert from_server == sent_message_types()
    described = asyncapi_document(Settings())["components"]["messages"]
    assert from_server == {name for name in described if name != "orderBody"}


def test_close_codes_are_the_servers() -> None:
    listed = {int(r[0]) for r in table("WebSockets", "close code")}
    assert listed == {int(c) for c in CLOSE_CODES}


def test_event_data_keys_are_the_documented_ones() -> None:
    listed = {code(k.strip()) for r in table("WebSockets", "key") for k in r[0].split(",")}
    assert listed == set(EVENT_DATA)
