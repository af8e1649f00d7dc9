"""The request record: what one request did, filled in along its path, logged and counted once.

Its home is here, below the web layer, because the readers are here: the logging middleware
(:mod:`gateway.observe.logs`) writes the one line and the metrics (:mod:`gateway.observe.metrics`)
from it, and the OpenTelemetry middleware (:mod:`gateway.observe.otel`) tags its span with it. The
handlers in :mod:`gateway.web` fill it in through :func:`record_of`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from gateway.upstream.failure import FailureKind

__all__ = ["RECORD", "RequestRecord", "record_of"]


@dataclass
class RequestRecord:
    """What one request did, filled in by the handlers, logged and counted once by a middleware."""

    request_id: str
    provider: str = ""
    endpoint: str = ""
    outcome: str = ""
    grant: str = ""
    upstream_status: int | None = None
    upstream_seconds: float | None = None
    upstream_failure: FailureKind | Literal[""] = ""
    extra: dict[str, str] = field(default_factory=dict)


RECORD = web.RequestKey("record", RequestRecord)


def record_of(request: web.Request) -> RequestRecord:
    """This request's record (a throwaway one outside the logging middleware, e.g. in unit tests)."""
    try:
        return request[RECORD]  # ``request.get`` is a Python call more (the Mapping mixin's)
    except KeyError:
        record = request[RECORD] = RequestRecord(request_id="-")
        return record
