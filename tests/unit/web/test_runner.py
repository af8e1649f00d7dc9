"""gateway.web.runner's settings and its rate-limited accept error."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from gateway.config.settings import ConnectionSettings, load_config
from gateway.web.runner import GatewayRunner, accept_error_handler
from unit.config.test_config import GATEWAY, problems_of, write


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


async def test_a_body_that_does_not_decode_leaves_one_redacted_line_and_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp drains the rest of a body after the answer and meets its decoding error again; the
    gateway's server logs that as one line without a traceback (whose text can quote the bytes)."""

    async def read(request: web.Request) -> web.Response:
        try:
            await request.read()
        except RequestPayloadError:
            return web.Response(status=400, text="bad body\n")
        return web.Response(text="read\n")

    app = web.Application()
    app.router.add_post("/token", read)
    runner = GatewayRunner(app, ConnectionSettings(), access_log=None)
    await runner.setup()
    site = web.SockSite(runner, bound := socket.create_server(("127.0.0.1", 0)))
    await site.start()
    port = bound.getsockname()[1]
    try:
        with caplog.at_level(logging.DEBUG):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = b"\x00not gzip secret-token-xyz" * 50
            writer.write(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            async with asyncio.timeout(5):
                while not any("in the HTTP server" in record.getMessage() for record in caplog.records):
                    await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
    assert head.startswith(b"HTTP/1.1 400 ")
    assert not [record for record in caplog.records if record.exc_info], "no traceback in the log"
    assert not any("secret-token" in record.getMessage() for record in caplog.records)
    assert [record.getMessage() for record in caplog.records if "in the HTTP server" in record.getMessage()] == [
        "Unhandled exception in the HTTP server: RequestPayloadError"
    ]
