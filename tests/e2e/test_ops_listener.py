"""The ops listener (``metrics: {host, port}``) and ``gateway health``, which the HEALTHCHECK runs.

In-process gateways as ``gateway serve`` runs them (an AppRunner and a TCPSite): /metrics moves off
the public port when ``metrics:`` is set, /healthz and /readyz answer on both, and ``gateway
health`` finds the right port and scheme from the config alone, TLS included.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from support.builders import self_signed
from support.harness import mapping_yaml, write_gateway_files
from support.sockets import bound_socket, port_of, refusing_port, start_site, unused_port
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RecordingUpstream

from gateway.cli.commands import main
from gateway.cli.health import check_health, health_url
from gateway.config.settings import ConfigError, load_config
from gateway.web.app import create_app
from gateway.web.server import ssl_context

Start = Callable[..., Awaitable[tuple[Path, int]]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []
    async with RecordingUpstream() as upstream:

        async def run(more: str = "") -> tuple[Path, int]:
            sock = bound_socket()
            port = port_of(sock)
            mapping = mapping_yaml(upstream, upstream_client_id=DEFAULT_CLIENT_ID)
            path, env = write_gateway_files(
                tmp_path, {"fake": mapping}, port=port, upstream_secret=DEFAULT_CLIENT_SECRET, more=more
            )
            config = load_config(path, env=env)
            runner = web.AppRunner(create_app(config), access_log=None)
            await runner.setup()
            await start_site(runner, sock=sock, ssl_context=ssl_context(config))
            runners.append(runner)
            return path, port

        yield run
        for runner in runners:
            await runner.cleanup()


async def _get(url: str) -> tuple[int, str]:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as client, client.get(url, ssl=insecure) as response:
        return response.status, await response.text()


async def test_metrics_move_to_the_ops_port(start: Start) -> None:
    ops = unused_port()  # a number in gateway.yaml: the gateway binds it, `gateway health` reads it
    path, port = await start(f"metrics: {{host: 127.0.0.1, port: {ops}}}\n")
    assert (await _get(f"http://127.0.0.1:{port}/metrics"))[0] == 404, "no /metrics on the public port"
    status, text = await _get(f"http://127.0.0.1:{ops}/metrics")
    assert status == 200 and "gateway_build_info" in text
    for where in (port, ops):
        assert (await _get(f"http://127.0.0.1:{where}/healthz"))[0] == 200
        status, text = await _get(f"http://127.0.0.1:{where}/readyz")
        assert status == 200 and "fake" in text
    assert health_url(path) == f"http://127.0.0.1:{ops}/healthz"
    assert (await asyncio.to_thread(check_health, path))[0]  # urllib blocks: off the serving loop


async def test_without_metrics_the_public_port_serves_them(start: Start) -> None:
    path, port = await start()
    assert (await _get(f"http://127.0.0.1:{port}/metrics"))[0] == 200
    assert health_url(path) == f"http://127.0.0.1:{port}/healthz"


async def test_gateway_health_follows_tls(start: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = self_signed(tmp_path)
    path, port = await start(f"tls: {{cert: {cert}, key: {key}}}\n")
    assert health_url(path) == f"https://127.0.0.1:{port}/healthz"
    # The CLI blocks (urllib); run it in a thread so this loop keeps serving.
    assert await asyncio.to_thread(main, ["health", "--config", str(path)]) == 0
    assert "200" in capsys.readouterr().out


def test_gateway_health_fails_when_nothing_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"listen: {{port: {refusing_port()}}}\nkeys: ['${{GATEWAY_KEY}}']\n")  # unset variables are fine here
    assert main(["health", "--config", str(path)]) == 1
    assert "healthz" in capsys.readouterr().err


async def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` as it is to the port and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def test_the_ops_port_has_the_public_ports_defences(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    """A cap, a header deadline and a quiet 400: half-sent requests can't hold the ops port (and the
    process's descriptors), and a malformed one is neither quoted back nor logged with a traceback."""
    ops = unused_port()
    await start(f"metrics: {{host: 127.0.0.1, port: {ops}}}\nconnections: {{max: 4, header_timeout: 0.5}}\n")
    half_sent = [asyncio.create_task(_raw(ops, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")) for _ in range(4)]
    await asyncio.sleep(0.2)  # the four are open and counted
    over = await _raw(ops, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2.0)
    assert over.startswith(b"HTTP/1.1 503") and b"Connection: close" in over, over
    answers = await asyncio.wait_for(asyncio.gather(*half_sent), 5)
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers
    with caplog.at_level(logging.DEBUG):
        bad = await _raw(ops, b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization : Basic c2VrcmV0\r\n\r\n")
    assert bad.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")) and b"c2VrcmV0" not in bad, bad
    assert not [record for record in caplog.records if record.exc_info or "c2VrcmV0" in record.getMessage()]
    assert (await _get(f"http://127.0.0.1:{ops}/healthz"))[0] == 200, "the probes still get in"


def test_the_ops_port_must_differ_from_the_public_one(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("listen: {port: 8080}\nmetrics: {port: 8080}\ndemo: true\n")
    with pytest.raises(ConfigError, match="metrics.port must differ"):
        load_config(path, env={})


async def test_gateway_health_never_asks_a_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy in the environment that answers 200 to anything must not make a stopped gateway healthy."""
    asked: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        asked.append(str(request.url))
        return web.Response(text="ok\n")

    proxy_app = web.Application()
    proxy_app.router.add_route("*", "/{tail:.*}", anything)
    proxy = web.AppRunner(proxy_app, access_log=None)
    await proxy.setup()
    try:
        proxy_url = await start_site(proxy)
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        path = tmp_path / "gateway.yaml"
        path.write_text(f"listen: {{port: {refusing_port()}}}\nkeys: ['${{GATEWAY_KEY}}']\n")  # nobody listens there
        assert await asyncio.to_thread(main, ["health", "--config", str(path)]) == 1, "a stopped gateway is not healthy"
        assert asked == [], "the health check went through the proxy"
    finally:
        await proxy.cleanup()


async def test_gateway_health_wants_the_gateways_own_answer(tmp_path: Path) -> None:
    """Another program answering 200 on the port (not /healthz's ``ok``) is not a healthy gateway."""

    async def other(request: web.Request) -> web.Response:
        return web.Response(text="<html>welcome</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", other)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        sock = bound_socket()
        port = port_of(sock)
        await start_site(runner, sock=sock)
        path = tmp_path / "gateway.yaml"
        path.write_text(f"listen: {{port: {port}}}\nkeys: ['${{GATEWAY_KEY}}']\n")
        healthy, seen = await asyncio.to_thread(check_health, path)
        assert not healthy and "200" in seen
    finally:
        await runner.cleanup()
