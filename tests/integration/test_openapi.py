"""GET /openapi.json: it and the route table agree, and the live app keeps to it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from order_engine.api.routes import setup_routes
from order_engine.appkeys import SETTINGS
from order_engine.config import Settings
from tests.support import Client

METHODS = {"get", "post", "put", "patch", "delete"}


def registered_routes() -> set[tuple[str, str]]:
    """Outside production, where the development routes are registered too."""
    app = web.Application()
    app[SETTINGS] = Settings()
    setup_routes(app)
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


async def test_document_lists_exactly_the_registered_routes(client: Client) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    document: dict[str, Any] = await resp.json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == registered_routes()


async def test_every_reference_resolves(client: Client) -> None:
    document: dict[str, Any] = await (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
