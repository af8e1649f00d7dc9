"""Logs: one line per request, JSON or plain text, with a request id and nothing secret.

Each request gets an id — taken from the configured header (``log.request_id_header``, default
``X-Request-Id``) when a proxy in front set a sane one, generated otherwise — and the id is
returned in the same response header, so a platform-side failure can be found in the logs.

The per-request line carries provider, endpoint, outcome, status, upstream status and latency.
It never carries a query string, a body, a cookie or an Authorization header: codes, tokens and
secrets travel only there, so they can't reach a log through this line. Other log lines follow
the same rule (see tests/e2e/test_operations.py, which searches all output for known secrets).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.observe.metrics import METRICS
from gateway.web.appkeys import RECORD, RequestRecord

__all__ = ["JsonFormatter", "TextFormatter", "TEXT_FORMAT", "setup_logging", "request_middleware", "escape_controls"]

log = logging.getLogger("gateway.request")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Attributes every LogRecord has; anything else was passed with ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


#: C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as ``\\xNN`` / ``\\uNNNN``.

    A request path is decoded (``%0A`` becomes a newline), so without this a client could forge
    whole log lines or send terminal escapes to whoever reads the log (CWE-117).
    """
    return _CONTROLS.sub(lambda match: match[0].encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """Plain text, with ``extra=`` fields appended as key=value (those the message says, left out).

    Every part of the line that can carry input — the message and each field — has its control
    characters escaped, so one record is always one line. A traceback (``exc_info``) keeps its
    own lines: it is the gateway's own text.
    """

    _IN_MESSAGE = frozenset({"method", "path", "status"})

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(
            f"{key}={escape_controls(str(value))}"
            for key, value in vars(record).items()
            if key not in _STANDARD and key not in self._IN_MESSAGE
        )
        return f"{line} {fields}" if fields else line


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    """Configure the root logger once (``serve``); tests keep pytest's own handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").disabled = True  # the request line below replaces it


def _request_id(request: web.Request, header: str) -> str:
    offered = request.headers.get(header, "")
    return offered if _SANE_ID.fullmatch(offered) else uuid.uuid4().hex


def request_middleware(header: str) -> Middleware:
    """Give each request an id and a record; log and count it once it has its answer."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        record = RequestRecord(request_id=_request_id(request, header))
        request[RECORD] = record
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers[header] = record.request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[header] = record.request_id
            raise
        finally:
            _finish(request, record, status, time.monotonic() - started)

    return middleware


def _finish(request: web.Request, record: RequestRecord, status: int, seconds: float) -> None:
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.observe(record)
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "method": request.method,
        "path": request.path,  # never the query string: it carries codes and states
        "status": status,
        "ms": round(seconds * 1000, 1),
    }
    for name in ("provider", "endpoint", "outcome", "grant", "upstream_failure"):
        value = getattr(record, name)
        if value:
            fields[name] = value
    if record.upstream_status is not None:
        fields["upstream_status"] = record.upstream_status
    if record.upstream_seconds is not None:
        fields["upstream_ms"] = round(record.upstream_seconds * 1000, 1)
    log.info("%s %s %d", request.method, request.path, status, extra=fields)
