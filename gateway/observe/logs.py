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

import contextlib
import itertools
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TextIO

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.observe.metrics import METRICS
from gateway.observe.record import RECORD, RequestRecord

__all__ = [
    "JsonFormatter", "TextFormatter", "TEXT_FORMAT", "DirectRequestLine", "setup_logging", "request_middleware", "escape_controls",
]

log = logging.getLogger("gateway.request")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Attributes every LogRecord has; anything else was passed with ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


#: ``json.dumps(…, default=str, separators=(",", ":"))`` without building an encoder per call.
_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode


def _json_time(created: float, msecs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


def _json_line(stamp: str, level: str, logger: str, message: str, fields: Mapping[str, Any]) -> str:
    """The JSON line's layout, for :class:`JsonFormatter` and :class:`DirectRequestLine` alike."""
    return _encode({"time": stamp, "level": level, "logger": logger, "message": message, **fields})


#: JSON string escaping as the encoder does it (``ensure_ascii``: C's, when the accelerator is there).
_quote = json.encoder.encode_basestring_ascii
_int_text = int.__repr__
_float_text = float.__repr__


def _request_json_line(head: str, message: str, fields: Mapping[str, Any]) -> str:
    """:func:`_json_line`'s very text for the request line (``head``: its constant start, up to the
    message), written out without the generic encoder: the fields are text, integers and finite
    floats, each spelled as :data:`_encode` spells it; anything else goes through it (a test
    compares the two with hostile values: quotes, controls, non-ASCII)."""
    parts = [head, _quote(message)]
    for key, value in fields.items():
        name = _names.get(key)
        if name is None:
            name = _names[key] = f",{_quote(key)}:"  # the request line's few field names, each quoted once
        parts += (name, _quote(value) if type(value) is str else _number(value))
    parts.append("}")
    return "".join(parts)


#: Each field name as the line spells it (``,"status":``).
_names: dict[str, str] = {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return _json_line(_json_time(record.created, record.msecs), record.levelname.lower(), record.name, record.getMessage(), fields)


#: C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as ``\\xNN`` / ``\\uNNNN``.

    A request path is decoded (``%0A`` becomes a newline), so without this a client could forge
    whole log lines or send terminal escapes to whoever reads the log (CWE-117).
    """
    return _CONTROLS.sub(lambda match: match[0].encode("unicode_escape").decode("ascii"), text)


#: Fields the text line's message already says (``GET /acme/token 200``).
_IN_MESSAGE = frozenset({"method", "path", "status"})


def _text_line(head: str, fields: Iterable[tuple[str, Any]]) -> str:
    """``head`` and then the fields as key=value, each escaped: the text line's layout, for
    :class:`TextFormatter` and :class:`DirectRequestLine` alike."""
    extra = " ".join(f"{key}={escape_controls(str(value))}" for key, value in fields if key not in _IN_MESSAGE)
    return f"{head} {extra}" if extra else head


class TextFormatter(logging.Formatter):
    """Plain text, with ``extra=`` fields appended as key=value (those the message says, left out).

    Every part of the line that can carry input — the message and each field — has its control
    characters escaped, so one record is always one line. A traceback (``exc_info``) keeps its
    own lines: it is the gateway's own text.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return _text_line(super().format(record), ((key, value) for key, value in vars(record).items() if key not in _STANDARD))


class DirectRequestLine:
    """The request line written straight to the handler :func:`setup_logging` installed.

    ``log.info(…, extra=fields)`` costs a ``LogRecord`` (about 20 attributes, a frame lookup for
    the caller), a walk up the logger tree, and a formatter that sorts the record's attributes
    back into fields — about a tenth of a ``/token`` request's CPU. This writes the very line
    :class:`JsonFormatter` or :class:`TextFormatter` would (tests/unit/observe/test_request_line.py
    compares them byte for byte), but only while the logging setup is still the one
    :func:`setup_logging` made: one handler on the root, nothing on ``gateway.request``, no
    filters, and the level lets info through. Anything else — pytest's ``caplog``, a handler
    an embedding program adds, ``logging.disable`` — gets a real record through ``logging``.
    """

    def __init__(self, handler: logging.StreamHandler[TextIO], fmt: str) -> None:
        self.handler = handler
        self.json = fmt == "json"
        self._second = -1
        self._stamp = ""
        self._logger = _quote(log.name)

    def ready(self) -> bool:
        """True while writing directly gives what ``log.info`` would."""
        root = logging.root
        return (
            not log.handlers
            and not log.filters
            and log.propagate
            and len(root.handlers) == 1
            and root.handlers[0] is self.handler
            and not root.filters
            and not self.handler.filters
            and self.handler.level <= logging.INFO
            and log.isEnabledFor(logging.INFO)
        )

    def _time(self, now: float, msecs: int) -> str:
        second = int(now)
        if second != self._second:  # strftime once a second, not once a request
            self._second = second
            if self.json:
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            else:
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        return f"{self._stamp}.{msecs:03d}Z" if self.json else f"{self._stamp},{msecs:03d}"

    def line(self, message: str, fields: dict[str, Any], now: float) -> str:
        """The formatted line for an info record of ``gateway.request``, without its terminator."""
        stamp = self._time(now, int((now - int(now)) * 1000))
        if self.json:
            return _request_json_line(f'{{"time":{_quote(stamp)},"level":"info","logger":{self._logger},"message":', message, fields)
        return _text_line(f"{stamp} INFO {log.name}: {escape_controls(message)}", fields.items())

    def json_head(self, now: float) -> str:
        """A JSON request line's start, up to its message: the time, level and logger."""
        stamp = self._time(now, int((now - int(now)) * 1000))
        return f'{{"time":{_quote(stamp)},"level":"info","logger":{self._logger},"message":'

    def write(self, message: str, fields: dict[str, Any]) -> None:
        self.write_line(self.line(message, fields, time.time()), message)

    def write_line(self, line: str, message: str) -> None:
        """Write one formatted line (``message``: for logging's error report if the write fails)."""
        handler = self.handler
        text = line + handler.terminator
        with handler.lock or contextlib.nullcontext():  # the executor thread of a reload logs too
            try:
                stream = handler.stream
                stream.write(text)
                stream.flush()  # StreamHandler.flush's work, under the lock already held
            except Exception:  # noqa: BLE001 - logging's own rule: a failing log never fails the request
                handler.handleError(logging.makeLogRecord({"msg": message, "name": log.name}))


_direct: DirectRequestLine | None = None


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    """Configure the root logger once (``serve``); tests keep pytest's own handlers."""
    global _direct
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").disabled = True  # the request line below replaces it
    _direct = DirectRequestLine(handler, fmt)


class _RequestIds:
    """Request ids: a random per-process prefix and a counter, 32 hex digits like a uuid4's.

    Unique within the process by the counter and across processes (replicas, restarts) by 64
    random bits; a correlation id, not a secret, so nothing more is needed than that. A uuid4
    costs a ``urandom`` system call per request; this costs a counter step.
    """

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)  # a forked child must not repeat the ids

    def renew(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_ids = _RequestIds()


def _request_id(request: web.Request, header: str) -> str:
    offered = request.headers.get(header)
    return offered if offered and _SANE_ID.fullmatch(offered) else _ids.next()


def request_middleware(header: str, *, within: Middleware | None = None) -> Middleware:
    """Give each request an id and a record; log and count it once it has its answer.

    ``within``: a middleware run inside this one, called directly rather than chained by aiohttp
    (the app's request guard, :func:`gateway.web.runner.request_guard`): one layer of aiohttp's
    middleware chain per request fewer, each a call through a partial and a coroutine.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        record = RequestRecord(request_id=_request_id(request, header))
        request[RECORD] = record
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request) if within is None else await within(request, handler)
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
    method, path = request.method, request.path  # never the query string: it carries codes and states
    direct = _direct
    if direct is not None and direct.ready():
        message = f"{method} {path} {status}"
        if direct.json:  # written out: the fields dict and a generic walk over it cost a third more
            direct.write_line(_json_request_line(direct.json_head(time.time()), message, record, method, path, status, seconds), message)
        else:
            direct.write(message, _fields(record, method, path, status, seconds))
    else:
        log.info("%s %s %d", method, path, status, extra=_fields(record, method, path, status, seconds))


def _fields(record: RequestRecord, method: str, path: str, status: int, seconds: float) -> dict[str, Any]:
    """The request line's fields, in their order (:func:`_json_request_line` writes the same)."""
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "method": method,
        "path": path,
        "status": status,
        "ms": round(seconds * 1000, 1),
    }
    # Written out rather than a getattr loop: this runs once per request.
    if record.provider:
        fields["provider"] = record.provider
    if record.endpoint:
        fields["endpoint"] = record.endpoint
    if record.outcome:
        fields["outcome"] = record.outcome
    if record.grant:
        fields["grant"] = record.grant
    if record.upstream_failure:
        fields["upstream_failure"] = record.upstream_failure
    if record.upstream_status is not None:
        fields["upstream_status"] = record.upstream_status
    if record.upstream_seconds is not None:
        fields["upstream_ms"] = round(record.upstream_seconds * 1000, 1)
    return fields


def _json_request_line(head: str, message: str, record: RequestRecord, method: str, path: str, status: int, seconds: float) -> str:
    """The JSON line of :func:`_fields` (after ``head``, :meth:`DirectRequestLine.json_head`), as
    :class:`JsonFormatter` writes it, byte for byte (tests/unit/observe/test_request_line.py
    compares them): each text quoted as the encoder quotes it, numbers as it spells them."""
    quote = _quote
    ms = round(seconds * 1000, 1)
    line = (
        f'{head}{quote(message)},"request_id":{quote(record.request_id)},"method":{quote(method)},"path":{quote(path)},'
        f'"status":{_number(status)},"ms":{_number(ms)}'
    )
    if record.provider:
        line += f',"provider":{quote(record.provider)}'
    if record.endpoint:
        line += f',"endpoint":{quote(record.endpoint)}'
    if record.outcome:
        line += f',"outcome":{quote(record.outcome)}'
    if record.grant:
        line += f',"grant":{quote(record.grant)}'
    if record.upstream_failure:
        line += f',"upstream_failure":{quote(record.upstream_failure)}'
    if record.upstream_status is not None:
        line += f',"upstream_status":{_number(record.upstream_status)}'
    if record.upstream_seconds is not None:
        line += f',"upstream_ms":{_number(round(record.upstream_seconds * 1000, 1))}'
    return line + "}"


def _number(value: object) -> str:
    """A value as the JSON encoder spells it: an integer's and a finite float's ``repr`` (JSON's own
    spelling of them) without the encoder, anything else through it (``type() is``: not a bool)."""
    if type(value) is int:
        return _int_text(value)
    if type(value) is float and value - value == 0.0:  # finite
        return _float_text(value)
    return _encode(value)
