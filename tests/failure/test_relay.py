"""Events cross real server processes through the hub's Redis relay."""

from __future__ import annotations

import aiohttp

from tests.failure.checks import poll
from tests.failure.conftest import ServerProcess, SpawnServer
from tests.support import order_body


async def logged(server: ServerProcess, text: str) -> bool:
    return any(text in line for line in server.log)


async def test_a_process_that_stopped_relaying_alone_relays_to_one_started_after_it(
    spawn_server: SpawnServer,
) -> None:
    """DESIGN.md: a client on any process hears about an order changed on any other. The
    first process, alone long enough to have stopped relaying, turns it back on before
    the second one serves: a socket on the second hears a cancel made on the first."""
    first = await spawn_server()
    await poll(lambda: logged(first, "no other process listens"), timeout_s=15)
    second = await spawn_server()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{first.base_url}/api/orders", json=order_body()) as resp:
            order_id = (await resp.json())["orderId"]
        async with session.ws_connect(f"{second.base_url}/ws/orders/{order_id}") as ws:
            assert (await ws.receive_json(timeout=5))["status"] == "pending"
            async with session.post(f"{first.base_url}/api/orders/{order_id}/cancel") as resp:
                assert resp.status == 200
            assert (await ws.receive_json(timeout=5))["status"] == "cancelled"
    assert await logged(first, "started on")
