"""gateway.web.runner's settings and its rate-limited accept error (issue 8, item 2)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from test_config import GATEWAY, problems_of, write

from gateway.config.settings import ConnectionSettings, load_config
from gateway.web.runner import accept_error_handler


def test_connection_settings_default_and_load(tmp_path: Path) -> None:
    assert load_config(write(tmp_path), env={}).connections == ConnectionSettings()
    text = GATEWAY + "connections: {max: 50, header_timeout: 2, body_timeout: 3, keepalive_timeout: 4, backlog: 64}\n"
    loaded = load_config(write(tmp_path, text), env={}).connections
    assert loaded == ConnectionSettings(max=50, header_timeout=2, body_timeout=3, keepalive_timeout=4, backlog=64)


@pytest.mark.parametrize("setting", ["max: 0", "body_timeout: 0", "backlog: 70000", "header_timeout: soon", "linger: 3"])
def test_connection_settings_are_validated(tmp_path: Path, setting: str) -> None:
    problems = problems_of(write(tmp_path, GATEWAY + f"connections: {{{setting}}}\n"))
    assert any(setting.split(":")[0] in str(problem) for problem in problems), problems


async def test_the_accept_resource_error_is_logged_at_most_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    context = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
    with caplog.at_level(logging.ERROR):
        for _ in range(5000):
            accept_error_handler(loop, context)
    assert len([record for record in caplog.records if "out of system resource" in record.getMessage()]) == 1
