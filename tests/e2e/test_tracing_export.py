"""The exporters `OTEL_TRACES_EXPORTER` picks (gateway.observe.otel): spans reach an OTLP/HTTP
collector stand-in on 127.0.0.1, or the console, as the OpenTelemetry variables say."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from aiohttp import web
from support.sockets import start_site

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")

from gateway.observe import otel  # noqa: E402


async def test_otlp_spans_reach_the_collector_the_variables_name(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[tuple[str, str, bytes]] = []

    async def collect(request: web.Request) -> web.Response:
        received.append((request.path, request.content_type, await request.read()))
        return web.Response(status=200, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    url = await start_site(runner)
    try:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-under-test")
        assert otel.enabled()
        provider = otel._provider_from_environment()
        with provider.get_tracer("test").start_as_current_span("GET /acme/authorize"):
            pass
        assert await asyncio.to_thread(provider.force_flush, 10_000)  # the exporter posts from its own thread
        await asyncio.to_thread(provider.shutdown)
    finally:
        await runner.cleanup()
    assert [(path, kind) for path, kind, _ in received] == [("/v1/traces", "application/x-protobuf")]
    body = received[0][2]
    assert b"GET /acme/authorize" in body and b"gateway-under-test" in body


def test_console_spans_go_to_stdout() -> None:
    """In a process of its own: the console exporter binds the stdout it found at import."""
    script = (
        "from gateway.observe import otel\n"
        "provider = otel._provider_from_environment()\n"
        "with provider.get_tracer('test').start_as_current_span('POST /acme/token'):\n"
        "    pass\n"
        "assert provider.force_flush(10_000)\n"
        "provider.shutdown()\n"
    )
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"name": "POST /acme/token"' in done.stdout


def test_tracing_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("", "none", " NONE "):
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
        assert not otel.enabled()
