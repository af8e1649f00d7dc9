"""The HTTP server around the app: connection cap, read deadlines, malformed requests, draining.

aiohttp's own server holds a connection as long as a client likes while it sends its headers or
body, accepts connections until the process runs out of file descriptors, and answers a request it
can't parse by logging the request line or header line (codes, states, ``Authorization``,
``Cookie``) with a traceback and echoing the bytes back. This module closes those holes
(docs/THREAT_MODEL.md):

* ``connections.max`` open connections at most; the next one is answered ``503`` with
  ``Connection: close`` at once and closed.
* ``connections.header_timeout``: from a request's first byte to the end of its headers;
  ``connections.body_timeout``: for its body (:func:`request_guard`). Past either: ``408`` and
  the connection is closed.
* A malformed request gets one redacted WARNING line (status and the parser's error class, no
  input) and a small ``400`` that does not quote it.
* Draining (:class:`Drain`): once SIGTERM came, every answer carries ``Connection: close``; a
  request still running when ``shutdown_grace`` is over is answered ``503`` rather than cut off,
  and one whose body is still arriving is read to the end first (:meth:`_Protocol.shutdown`).
* No traceback: an unexpected failure in a handler is a short ``500`` (:func:`request_guard`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.config.settings import ConnectionSettings
from gateway.observe.record import RECORD

__all__ = ["GatewayRunner", "Drain", "DRAIN", "request_guard", "accept_error_handler"]

log = logging.getLogger("gateway.server")
#: The last-resort lines keep the logger they always had (the application's).
log_app = logging.getLogger("gateway.web.app")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nbusy\n"
_SLOW = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nslow\n"


class _Protocol(RequestHandler):
    """aiohttp's request handler with a connection cap, a header deadline and quiet errors."""

    settings: ConnectionSettings = ConnectionSettings()
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        if manager is not None and len(manager.connections) >= self.settings.max:
            assert isinstance(transport, asyncio.Transport)
            transport.write(_BUSY)
            transport.close()
            self._manager = None  # never registered: connection_lost has nothing to undo
            _rate_limited("connection refused: %d connections open (connections.max)", self.settings.max)
            return
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        waiting_before = len(self._messages)
        if self._close and not self._force_close and self._request_in_progress:
            # aiohttp's pre-shutdown close() means "no new request on this connection", but its
            # data_received then drops the body of the request being handled too: read it.
            self._close = False
            try:
                super().data_received(data)
            finally:
                self._close = True
        else:
            super().data_received(data)
        if len(self._messages) > waiting_before or self._payload_parser is not None:
            self._cancel_header_timer()
        elif self._header_timer is None and self.transport is not None and self._awaiting_a_request():
            # Bytes of a request whose headers are not complete yet: they have a deadline.
            self._header_timer = self._loop.call_later(self.settings.header_timeout, self._headers_too_slow)

    def _awaiting_a_request(self) -> bool:
        """The connection waits for its next request (not in a body, not handling one)."""
        waiter = self._waiter  # None too before the connection's first request is awaited
        idle = waiter is None or not waiter.done()
        return idle and not self._messages and not self._request_in_progress and self._current_request is None

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is not None and self._awaiting_a_request():
            _rate_limited(
                "request headers not complete within %gs: connection closed (repeats are not logged for a second)",
                self.settings.header_timeout,
                level=logging.WARNING,
            )
            transport.write(_SLOW)
            self.force_close()  # closes the transport once the 408 is flushed, and forgets it

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        """Let the running request finish, body and all, before aiohttp stops reading.

        aiohttp's shutdown first marks the connection force-closed, and from then on its
        ``data_received`` drops every byte: a token request whose body was still arriving at
        SIGTERM (a rolling deploy) starved until ``body_timeout`` and got a 408. Waiting for the
        request first lets its body in; the grace still bounds it (:func:`request_guard`
        answers 503 when it runs out) and the answer closes the connection.
        """
        if self._request_in_progress:
            self._handler_waiter = self._loop.create_future()  # resolved by aiohttp when the request ends
            try:
                async with asyncio.timeout(timeout):
                    await self._handler_waiter
            except TimeoutError:
                pass
            finally:
                self._handler_waiter = None
        await super().shutdown(timeout)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own error lines, redacted: its message and the exception's class, no traceback.

        The common one: a body that does not decode (``Content-Encoding: gzip`` on bytes that are
        not), met again when aiohttp drains the rest of the body after the gateway's 400. Its
        traceback quotes the parser's message, which can quote the client's bytes.
        """
        exc = kw.get("exc_info")
        message = args[0] if args and isinstance(args[0], str) else "error"
        log.warning("%s in the HTTP server: %s", message, type(exc).__name__ if isinstance(exc, BaseException) else "-")

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """One redacted line and a small answer: the parser's message quotes the client's bytes."""
        if status == 500 and exc is not None:
            log.error("unhandled error in the HTTP server: %s", type(exc).__name__)
        else:
            log.warning("malformed request refused: %d %s", status, type(exc).__name__ if exc else "")
        if request.writer.output_size > 0:
            raise ConnectionError("answer already started")
        text = {400: "bad request\n", 408: "too slow\n", 413: "too large\n", 500: "internal error\n"}.get(status, "error\n")
        response = web.Response(status=status, text=text, content_type="text/plain")
        response.force_close()
        return response


class _Server(web.Server):
    """Builds :class:`_Protocol` handlers for each connection."""

    settings: ConnectionSettings = ConnectionSettings()

    def __call__(self) -> RequestHandler:
        handler = _Protocol(self, loop=self._loop, **self._kwargs)
        handler.settings = self.settings
        return handler


class GatewayRunner(web.AppRunner):
    """An ``AppRunner`` whose connections are :class:`_Protocol` (``gateway serve`` and the tests)."""

    def __init__(self, app: web.Application, settings: ConnectionSettings, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", settings.keepalive_timeout)
        super().__init__(app, **kwargs)
        self._settings = settings

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state; only the per-connection factory differs
        assert isinstance(server, _Server)
        server.settings = self._settings
        return server


class Drain:
    """Shutdown state shared by the server loop and :func:`request_guard`."""

    def __init__(self) -> None:
        self.closing = False
        #: The tasks of the requests being handled; past the grace, each is cancelled (then 503).
        self.running: set[asyncio.Task[Any]] = set()
        self.expired: asyncio.Event = _GraceOver(self)


class _GraceOver(asyncio.Event):
    """Set when the grace is over: every request still running is cancelled, to be answered 503."""

    def __init__(self, drain: Drain) -> None:
        super().__init__()
        self._drain = drain

    def set(self) -> None:
        super().set()
        for task in list(self._drain.running):
            task.cancel("the shutdown grace is over")


DRAIN: web.AppKey[Drain] = web.AppKey("drain", Drain)


def request_guard(settings: Callable[[web.Request], ConnectionSettings]) -> Any:
    """The middleware that sees every request answered, whatever happens to it, in three steps:

    1. **Draining** (:class:`Drain`): while the server drains, the answer closes its connection;
       past the grace, a request still running is cancelled and answered ``503``. The handler
       runs in the request's own task, which :class:`Drain` cancels when the grace is over;
       racing it against the grace's event instead would cost two more tasks per request.
    2. **The body deadline**: a request body must arrive within ``connections.body_timeout``
       (else ``408``). The body is waited for (not read) before the handler runs, so the handler
       still reads it itself, with its own size limit. A body larger than the read buffer can't
       arrive whole without being read; it is left to the handler's size limit.
    3. **Never a traceback**: an unexpected failure gets a short, generic ``500``; a client that
       left in the middle of its body is noted (``client_disconnect``), with nobody to answer.

    One coroutine for all three, and the gateway's app does not even chain it as a middleware of
    its own: the request line's middleware calls it (``request_middleware(…, within=guard)``).
    Each layer of aiohttp's middleware chain costs a call through a partial and a coroutine per
    request, and each coroutine its creation and an await.
    """

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        drain = request.app.get(DRAIN)
        task = asyncio.current_task()
        response: web.StreamResponse
        if drain is not None and (drain.expired.is_set() or task is None):
            response = _shutting_down(request)
        else:
            running = drain.running if drain is not None else None
            if running is not None and task is not None:
                running.add(task)
            try:
                content = request.content
                # A body that arrived with its headers (a token request's few hundred bytes, nearly
                # always) is complete already: no timer to start and cancel (step 2).
                late = None
                if request.body_exists and not content.is_eof():
                    late = await _body_late(request, settings)
                if late is not None:
                    response = late
                else:
                    response = await handler(request)
            except web.HTTPException as exc:
                # aiohttp's own answers (404, 405, 413 from a form read): an exception that is
                # its response; it leaves this coroutine without passing the lines below.
                if drain is not None and drain.closing:
                    exc.force_close()
                raise
            except asyncio.CancelledError:
                if drain is None or task is None or not drain.expired.is_set():
                    raise  # the client left (or the server stops): not the grace's doing
                task.uncancel()
                response = _shutting_down(request)
            except ConnectionResetError:
                # The client left in the middle of its request (body): its mistake, nobody to answer.
                log_app.info("client disconnected during %s %s", request.method, request.path)
                record = request.get(RECORD)
                if record is not None:
                    record.outcome = "client_disconnect"
                response = web.Response(status=499, text="client disconnected\n")  # nginx's code; never sent
            except Exception:
                log_app.exception("unhandled error on %s %s", request.method, request.path)
                response = web.json_response(
                    {"error": "server_error", "error_description": "internal error"},
                    status=500,
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
                )
            finally:
                if running is not None and task is not None:
                    running.discard(task)
        if drain is not None and drain.closing:
            response.force_close()
        return response

    return guard


async def _body_late(request: web.Request, settings: Callable[[web.Request], ConnectionSettings]) -> web.Response | None:
    """The ``408`` for a body that did not arrive within ``connections.body_timeout``, else None."""
    content = request.content
    # A body that arrived with its headers is complete already (the guard asks that first).
    # A stream that failed already (e.g. a gzip body that does not decompress) never reaches EOF,
    # and wait_eof() does not look at the stored error: the handler's read reports it.
    if not request.body_exists or content.is_eof() or content.exception() is not None:
        return None
    length = request.content_length
    if length is not None and length > request.client_max_size:
        return None
    try:
        async with asyncio.timeout(settings(request).body_timeout):
            await content.wait_eof()
    except TimeoutError:
        record = request.get(RECORD)
        if record is not None:
            record.outcome = "body_timeout"
        response = web.Response(status=408, text="too slow\n", content_type="text/plain")
        response.force_close()
        return response
    except Exception:  # noqa: BLE001 - e.g. a gzip body that does not decompress:
        pass  # the stream keeps the error, and the handler's own read answers it as the handler does
    return None


def _shutting_down(request: web.Request) -> web.Response:
    record = request.get(RECORD)
    if record is not None:
        record.outcome = "shutdown"
    return web.json_response(
        {"error": "temporarily_unavailable", "error_description": "the gateway is shutting down; try again"},
        status=503,
        headers={"Cache-Control": "no-store", "Retry-After": "1"},
    )


_last_logged: dict[str, float] = {}


def _rate_limited(message: str, *args: object, level: int = logging.ERROR) -> None:
    """Log ``message`` at most once a second (per message): a flood must not flood the log."""
    now = time.monotonic()
    if now - _last_logged.get(message, -1.0) >= 1.0:
        _last_logged[message] = now
        log.log(level, message, *args)


def accept_error_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: asyncio logs each failed ``accept()`` (EMFILE) — thousands a
    second when descriptors run out. Those are logged once a second; everything else as usual."""
    message = str(context.get("message", ""))
    if "out of system resource" in message:
        exc = context.get("exception")
        _rate_limited("%s: %s (repeats are not logged for a second)", message, type(exc).__name__ if exc else "")
        return
    loop.default_exception_handler(context)
