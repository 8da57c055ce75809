"""The README's two commands, its curl and its WebSocket example, run as a reader would
run them: `make run`'s command serves on a port of the test's own, against its database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from order_engine.embedded import free_port
from tests.failure.conftest import ServerProcess, server_environ, start_server
from tests.support import STATUS_PATH

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SHELL_BLOCKS: list[str] = re.findall(r"```sh\n(.*?)```", README, re.S)
# The venv running these tests stands for the one `make` creates.
VENV = Path(sys.executable).parent.parent


def block_with(text: str) -> str:
    (block,) = [b for b in SHELL_BLOCKS if text in b]
    return block


async def run(*command: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def make_command(target: str) -> str:
    """The command `make <target>` ends with, as `make -n` prints it (install steps that a
    stale venv would take come before it and are only printed)."""
    # As from a reader's shell, even when this runs under `make test` itself.
    environ = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    code, output = await run(
        "make", "-n", "--no-print-directory", target, f"VENV={VENV}", env=environ
    )
    assert code == 0, output
    return output.strip().splitlines()[-1]


@pytest.fixture
async def served(db_url: str, redis_prefix: str) -> AsyncIterator[ServerProcess]:
    """`make run`'s own command, on a free port."""
    command = await make_command("run")
    assert command.endswith("order-engine serve"), command
    port = free_port()
    environ = server_environ(db_url, redis_prefix, port, MOCK_DEX_EXECUTION_DELAY_MS="50")
    server = await start_server(environ, port, ROOT, command.split())
    drain = asyncio.create_task(server.drain_log())
    yield server
    server.terminate()
    await asyncio.wait_for(server.process.wait(), 30)
    drain.cancel()


def on_port(text: str, server: ServerProcess) -> str:
    return text.replace("localhost:3000", server.base_url.removeprefix("http://"))


@pytest.mark.slow
async def test_readme_commands_and_examples_work(served: ServerProcess) -> None:
    """`make run` serves (above); `make test` runs this venv's pytest, which collects; the
    curl places an order, and the WebSocket example, given its id, prints every status
    up to confirmed and ends."""
    commands = block_with("make run")
    assert "make test" in commands
    pytest, *options = (await make_command("test")).split()
    assert pytest.endswith("pytest"), pytest
    assert "--cov" in options
    code, output = await run(pytest, "--collect-only", "-q", "tests/unit")
    assert code == 0, output

    code, output = await run("bash", "-c", on_port(block_with("curl"), served))
    assert code == 0, output
    order = json.loads(output)
    assert order["status"] == "pending"
    assert order["wsUrl"] == f"/ws/orders/{order['orderId']}"

    example = on_port(block_with("ORDER_ID="), served)
    example = re.sub(r"^ORDER_ID=.*$", f"ORDER_ID={order['orderId']}", example, flags=re.M)
    example = example.replace(".venv/bin/python", sys.executable)
    code, output = await run("bash", "-c", example)
    assert code == 0, output
    messages = [json.loads(line) for line in output.splitlines()]
    assert [m["status"] for m in messages] == STATUS_PATH
    assert {m["orderId"] for m in messages} == {order["orderId"]}
