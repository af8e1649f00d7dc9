"""Optional OpenTelemetry tracing: one server span per hop, the upstream call as its child.

Off unless the ``otel`` extra is installed (``pip install 'gateway[otel]'``) *and* the standard
variable ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``; ``console`` for a look). Everything
else is the SDK's standard configuration: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``
(default ``gateway``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``...

Why the server span is ours and not opentelemetry-instrumentation-aiohttp-server's: that
middleware records the request target *with its query string*, and the gateway's query strings
carry authorization codes and states (it redacts only a fixed list of cloud-signature parameters).
Ours records the route template, never the query, and the facts operators ask for: provider,
endpoint, outcome (``success`` or the OAuth error code), grant, upstream status and failure kind,
from the request's :class:`~gateway.observe.record.RequestRecord` (the same facts the log line and the
metrics carry). The upstream token call is a client span of its own (:func:`client_spans`, an
observer of :mod:`gateway.upstream.http1`), its URL without the query, the ``traceparent`` sent on. The trace id is added to every log line written inside a
span (``trace_id``), so a log line leads to its trace. An incoming ``traceparent`` is honoured.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.observe.record import record_of
from gateway.upstream import http1

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["enabled", "instrument", "tracing_middleware", "client_spans", "TraceIdFilter"]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def enabled() -> bool:
    """Is tracing asked for (``OTEL_TRACES_EXPORTER``) and is the ``otel`` extra installed?"""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in ("", "none"):
        return False
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        log.warning("OTEL_TRACES_EXPORTER=%s but the otel extra is not installed: no tracing", exporter)
        return False
    return True


def _provider_from_environment() -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "gateway")}))
    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` (32 hex digits) to records logged while a span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
        return True


def tracing_middleware(tracer_provider: Any) -> Any:
    """The server span of each request, named and described from its route and record."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = tracer_provider.get_tracer("gateway")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        parent = propagate.extract(dict(request.headers))
        with tracer.start_as_current_span(f"{request.method} {route}", context=parent, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("http.route", route)
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                span.set_attribute("http.response.status_code", status)
                record = record_of(request)
                for name in ("provider", "endpoint", "outcome", "grant", "upstream_failure"):
                    value = getattr(record, name)
                    if value:
                        span.set_attribute(f"gateway.{name}", value)
                if record.upstream_status is not None:
                    span.set_attribute("gateway.upstream_status", record.upstream_status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))

    return middleware


def client_spans(tracer_provider: Any) -> http1.CallObserver:
    """A client span for each upstream call, a child of the hop's span, its context sent on.

    The span names the method and carries the URL without its query (a GET token endpoint's query
    holds the code), the server's name and port, and the answer's status (RFC 9110 semantics, as
    OpenTelemetry's HTTP conventions name them).
    """
    from urllib.parse import urlsplit

    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = tracer_provider.get_tracer("gateway.upstream")

    def observe(method: str, url: str, headers: dict[str, str]) -> http1.CallEnd:
        parts = urlsplit(url)
        span = tracer.start_span(method, kind=SpanKind.CLIENT, attributes={
            "http.request.method": method,
            "url.full": parts._replace(query="", fragment="").geturl(),
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        })
        propagate.inject(headers, context=trace.set_span_in_context(span))

        def end(status: int | None, error: BaseException | None) -> None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if error is not None:
                span.set_attribute("error.type", type(error).__name__)
            if error is not None or (status is not None and status >= 500):
                span.set_status(Status(StatusCode.ERROR))
            span.end()

        return end

    return observe


def instrument(app: web.Application, tracer_provider: TracerProvider | None = None) -> bool:
    """Trace ``app`` (before it starts) if tracing is enabled or a provider is given; True if so.

    ``tracer_provider`` is for tests (an in-memory exporter); in production it is built from the
    OTEL_* variables. Upstream calls are observed process-wide (:func:`client_spans`) until the
    app's cleanup, so the token call becomes a child span of the hop.
    """
    if tracer_provider is None:
        if not enabled():
            return False
        tracer_provider = _provider_from_environment()
    observer = client_spans(tracer_provider)
    http1.add_observer(observer)
    # Outermost: the span covers the logging middleware too, so the log line carries the trace id.
    app.middlewares.insert(0, tracing_middleware(tracer_provider))
    trace_filter = TraceIdFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, TraceIdFilter) for existing in handler.filters):
            handler.addFilter(trace_filter)

    async def flush(_: web.Application) -> None:
        http1.remove_observer(observer)
        tracer_provider.shutdown()

    app.on_cleanup.append(flush)
    return True
