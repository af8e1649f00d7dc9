"""OpenTelemetry tracing (the ``otel`` extra), recorded with the SDK's in-memory exporter.

A whole link through an in-process gateway in front of the recording upstream: one server span per hop
with provider, endpoint, outcome and upstream status; the upstream token call a child span of the
/token hop; no code, state, secret or token in any attribute; the trace id in the log line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from support.harness import (
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    PLATFORM_SECRET,
    mapping_yaml,
    query_of,
    write_gateway_files,
)
from support.sockets import bound_socket, port_of, start_site
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RecordingUpstream

from gateway.config.settings import load_config
from gateway.web.app import create_app

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from gateway.observe import otel  # noqa: E402


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[str, InMemorySpanExporter, RecordingUpstream]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with RecordingUpstream() as upstream:
        sock = bound_socket()
        mapping = mapping_yaml(upstream, upstream_client_id=DEFAULT_CLIENT_ID)
        path, env = write_gateway_files(tmp_path, {"fake": mapping}, port=port_of(sock), upstream_secret=DEFAULT_CLIENT_SECRET)
        app = create_app(load_config(path, env=env))
        assert otel.instrument(app, tracer_provider=provider)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        url = await start_site(runner, sock=sock)
        try:
            yield url, exporter, upstream
        finally:
            await runner.cleanup()


async def _link(url: str) -> tuple[dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        query = urlencode({
            "client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "state-secret-123",
            "response_type": "code", "scope": "openid",
        })
        async with browser.get(f"{url}/fake/authorize?{query}", allow_redirects=False) as response:
            to_upstream = response.headers["Location"]
        async with browser.get(to_upstream, allow_redirects=False) as response:
            back = response.headers["Location"]
        async with browser.get(back, allow_redirects=False) as response:
            answer = query_of(response.headers["Location"])
        form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": ALEXA_REDIRECT}
        async with browser.post(f"{url}/fake/token", data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
            assert response.status == 200
            return {**answer, "upstream_code": query_of(back)["code"]}, await response.json()


def _server_spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER]
    return {str((span.attributes or {}).get("gateway.endpoint")): span for span in spans}


async def test_one_span_per_hop_with_the_facts(traced: tuple[str, InMemorySpanExporter, RecordingUpstream]) -> None:
    url, exporter, _ = traced
    await _link(url)
    spans = _server_spans(exporter)
    assert set(spans) == {"authorize", "callback", "token"}
    for endpoint, span in spans.items():
        attributes = dict(span.attributes or {})
        assert attributes["gateway.provider"] == "fake"
        assert attributes["gateway.outcome"] == "success", (endpoint, attributes)
        assert attributes["http.route"] == f"/{{provider}}/{endpoint}"
    token = spans["token"]
    assert dict(token.attributes or {})["gateway.upstream_status"] == 200
    clients = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.CLIENT]
    upstream_calls = [span for span in clients if span.parent is not None and span.parent.span_id == token.context.span_id]
    assert len(upstream_calls) == 1, "the upstream token call is a child span of the /token hop"
    call = dict(upstream_calls[0].attributes or {})
    assert call["http.response.status_code"] == 200 and "?" not in str(call["url.full"])


async def test_the_upstream_sees_the_calls_trace_context(traced: tuple[str, InMemorySpanExporter, RecordingUpstream]) -> None:
    url, exporter, upstream = traced
    await _link(url)
    client_span = next(span for span in exporter.get_finished_spans() if span.kind == SpanKind.CLIENT)
    sent = upstream.requests_to("/token")[-1].headers["traceparent"]
    assert sent.split("-")[1:3] == [format(client_span.context.trace_id, "032x"), format(client_span.context.span_id, "016x")]


async def test_no_secret_in_any_attribute(traced: tuple[str, InMemorySpanExporter, RecordingUpstream]) -> None:
    url, exporter, _ = traced
    answer, token = await _link(url)
    secrets = {
        answer["code"], answer["upstream_code"], "state-secret-123", PLATFORM_SECRET, DEFAULT_CLIENT_SECRET,
        token["access_token"], token.get("refresh_token", "refresh-absent"), PLATFORM_BASIC.split()[1],
    }
    for span in exporter.get_finished_spans():
        for name, value in (span.attributes or {}).items():
            for secret in secrets:
                assert secret not in str(value), f"{span.name}: {name} carries a secret"


async def test_the_log_line_carries_the_trace_id(
    traced: tuple[str, InMemorySpanExporter, RecordingUpstream], caplog: pytest.LogCaptureFixture
) -> None:
    url, exporter, _ = traced
    caplog.handler.addFilter(otel.TraceIdFilter())  # as instrument() does for the handlers at start
    with caplog.at_level(logging.INFO, logger="gateway"):
        await _link(url)
    token_span = _server_spans(exporter)["token"]
    lines = [record for record in caplog.records if getattr(record, "endpoint", "") == "token"]
    assert lines and lines[-1].__dict__["trace_id"] == format(token_span.context.trace_id, "032x")


def test_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert not otel.enabled()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not otel.enabled()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    assert otel.enabled()
