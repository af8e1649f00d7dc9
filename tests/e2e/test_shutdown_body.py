"""A request whose body is still arriving when SIGTERM comes is read and answered, not starved.

aiohttp stops reading a connection as soon as its shutdown starts; gateway.web.runner waits for
the running request first. Played in-process (the runner `gateway serve` uses) and for real by
deploy/test-image.sh against the container.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from support.harness import PLATFORM_BASIC, mapping_yaml, write_gateway_files
from support.sockets import bound_socket
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RecordingUpstream

from gateway.config.settings import load_config
from gateway.web.app import create_app
from gateway.web.runner import DRAIN, GatewayRunner

HEAD = "POST /fake/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nAuthorization: {}\r\n\r\n"


async def test_a_body_arriving_after_sigterm_is_read_and_answered(tmp_path: Path) -> None:
    async with RecordingUpstream() as fake:
        await _body_after_sigterm(tmp_path, fake)


async def _body_after_sigterm(tmp_path: Path, fake: RecordingUpstream) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    mapping = mapping_yaml(fake, upstream_client_id=DEFAULT_CLIENT_ID)
    path, env = write_gateway_files(tmp_path, {"fake": mapping}, port=port, upstream_secret=DEFAULT_CLIENT_SECRET,
                                    more="shutdown_grace: 5\nconnections: {body_timeout: 4}\n")
    config = load_config(path, env=env)
    app = create_app(config)
    runner = GatewayRunner(app, config.connections, access_log=None, shutdown_timeout=6)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = f"grant_type=refresh_token&refresh_token={fake.issue_refresh_token()}".encode()
    writer.write(HEAD.format(len(body), PLATFORM_BASIC).encode())  # the headers now, the body after the signal
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is running and waits for the body
    app[DRAIN].closing = True  # what SIGTERM does in gateway.web.server
    stopping = asyncio.create_task(runner.cleanup())
    await asyncio.sleep(0.3)  # the shutdown has begun
    writer.write(body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await asyncio.wait_for(stopping, 10)
    head = answer.split(b"\r\n\r\n", 1)[0]
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b"Connection: close" in head, answer
    assert len(fake.token_requests) == 1  # the body reached the handler, which relayed it
