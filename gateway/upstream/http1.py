"""The HTTP/1.1 client of the upstream token calls: a keep-alive pool around llhttp, and nothing else.

Why not aiohttp's ``ClientSession`` (the gateway's client until December 2026): a call through it
cost about 90 µs of CPU at 50 concurrent calls and 220 µs one at a time, more than the whole of the
gateway's own work on a refresh. Most of it is machinery a token call never uses: cookies,
redirects, proxies, authentication helpers, multipart, URL objects rebuilt per call, tracing
signals and a streaming reader. This client does what the calls need, for a third of that
(``bench/bench.py``; docs/performance.md). The part where HTTP/1.1 clients go wrong, reading the
answer's framing (``Content-Length``, chunked coding, interim answers), is not written here: it is
llhttp, Node.js's parser, through ``httptools`` (MagicStack's binding, the parser of uvicorn).

What it does, and why:

* **One request at a time per connection**, connections kept per (scheme, host, port) and reused
  (RFC 9112 §9.3) only after a whole answer that allows it. A byte that arrives when no request is
  waiting, or a second answer behind the first, closes the connection: nothing stale is ever read
  as the next call's answer.
* **Limits**: at most ``limit_per_host`` connections in use to one host and ``limit`` in all;
  further calls wait for a slot (within their caller's deadline). A host that hangs holds a
  quarter of the pool, so the other providers' calls still find connections.
* **Idle connections** close after ``idle_seconds`` (15 s, as aiohttp's default keep-alive did).
* **No retry, ever**: a token request is a POST (RFC 9110 §9.2.2, not idempotent), and a retried
  code exchange could spend the code twice.
* **TLS** verifies with the system's trust store (``ssl.create_default_context``, which honours
  ``SSL_CERT_FILE``) and sends SNI.
* **Names** are looked up by ``resolver`` when one is given (the public-only client,
  :mod:`gateway.upstream.publicdns`: the addresses it vetted are the ones connected to), else by
  the event loop's ``getaddrinfo``; the addresses are tried with Happy Eyeballs (RFC 8305, through
  ``aiohappyeyeballs``, aiohttp's own), so one that does not answer costs 250 ms, not the deadline.
* **Answers** are framed by ``Content-Length``, chunked coding or, lacking both, the end of the
  connection (RFC 9112 §6.3); one cut short is an error, never an answer. A body over
  ``max_body`` bytes stops being kept (the first ``max_body + 1`` bytes are handed on, so the
  caller sees it is too large) and its connection is closed. ``gzip`` and ``deflate`` answers
  (RFC 9110 §8.4.1) are decoded, within the same bound.
* **Request heads** refuse a header name that is not a token or a value with a control character
  (RFC 9110 §5.5): a header can never be split into two.

Errors are :class:`ConnectionFailed` (no connection, a connection lost before the whole answer, an
answer llhttp refuses) and its :class:`LookupFailed` (the name did not resolve, or resolved to an
address the resolver refused: ``os_error`` says which).

An observer (:func:`add_observer`) sees each call start and end: the OpenTelemetry client span
(:mod:`gateway.observe.otel`) is one, and may add headers (``traceparent``) before the request is
written.
"""

from __future__ import annotations

import asyncio
import functools
import re
import select
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, cast
from urllib.parse import quote, urlsplit

import aiohappyeyeballs
import httptools
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.oauth.formencoding import form_urlencode

__all__ = [
    "ConnectionFailed", "LookupFailed", "Http1Client", "CallObserver", "CallEnd", "add_observer", "remove_observer",
]

#: A header name (RFC 9110 §5.1: a token) and a value with no control character but tab (§5.5).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Characters a request target keeps as they are: RFC 3986's unreserved and sub-delims, ``:@/?``
#: and ``%`` (a target already percent-encoded stays so); anything else is percent-encoded (UTF-8).
_TARGET_SAFE = "/?:@!$&'()*+,;=-._~%"
#: Seconds before the next address is tried while one still connects (RFC 8305 §5; aiohttp's too).
HAPPY_EYEBALLS_DELAY = 0.25
#: One address to connect to, as ``getaddrinfo`` gives it.
_AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
#: An answer's head larger than this is no token endpoint's: the connection is dropped.
MAX_HEAD_BYTES = 64 * 1024


class ConnectionFailed(Exception):
    """No connection, or the connection ended or broke before the whole answer."""


class LookupFailed(ConnectionFailed):
    """The host name gave no address to connect to; ``os_error`` is the resolver's reason."""

    def __init__(self, message: str, os_error: OSError) -> None:
        super().__init__(message)
        self.os_error = os_error


#: The end of an observed call: the answer's status (None when there was none) and the error.
CallEnd = Callable[[int | None, BaseException | None], None]


class CallObserver(Protocol):
    """Told of each call before its head is written (``headers`` may gain entries); returns its end."""

    def __call__(self, method: str, url: str, headers: dict[str, str]) -> CallEnd: ...


_observers: list[CallObserver] = []


def add_observer(observer: CallObserver) -> None:
    """Observe every call of every client in the process (as an instrumentation library would)."""
    if observer not in _observers:
        _observers.append(observer)


def remove_observer(observer: CallObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


@dataclass(frozen=True, slots=True)
class _Destination:
    """What a URL says about where and how to send: parsed, checked and encoded once per URL."""

    scheme: str
    host: str
    port: int
    host_header: str
    target: str


@functools.lru_cache(maxsize=1024)
def _destination(url: str) -> _Destination:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConnectionFailed(f"not an http(s) URL: scheme {scheme!r}")
    try:
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ConnectionFailed("the URL's port is not a number") from None
    if not host:
        raise ConnectionFailed("the URL names no host")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise ConnectionFailed("the URL's host is not a valid name") from None
    if _CONTROL.search(host) or any(c in host for c in " /\\?#@"):
        raise ConnectionFailed("the URL's host is not a valid name")
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == (443 if scheme == "https" else 80) else f"{shown}:{port}"
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return _Destination(scheme, host, port, host_header, target)


def _head(method: str, target: str, host_header: str, headers: Mapping[str, str], body: bytes | None, agent: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\n"]
    named_agent = named_encoding = False
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            raise ConnectionFailed("a request header is not a valid field")
        lowered = name.lower()
        if lowered in ("host", "content-length", "transfer-encoding", "connection"):
            continue  # this client's to say: one request, framed by its length, on a kept connection
        named_agent = named_agent or lowered == "user-agent"
        named_encoding = named_encoding or lowered == "accept-encoding"
        lines.append(f"{name}: {value}\r\n")
    if not named_agent:
        lines.append(f"User-Agent: {agent}\r\n")
    if not named_encoding:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body) if body is not None else 0}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


class _Answer:
    """One answer as llhttp reads it (the parser's callbacks), and what the caller reads of it."""

    __slots__ = (
        "parser", "status", "headers", "_raw", "_body", "_size", "_limit", "complete", "keep_alive", "overflow",
        "error", "_framed", "_head_ready", "_done", "_messages", "_loop", "_head_bytes",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: CIMultiDictProxy[str] = _NO_HEADERS
        self._raw: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._limit = limit
        self.complete = False
        self.keep_alive = False
        self.overflow = False
        self.error: BaseException | None = None
        self._framed = False
        self._loop = loop
        self._head_ready: asyncio.Future[None] = loop.create_future()
        self._done: asyncio.Future[None] | None = None
        self._messages = 0
        self._head_bytes = 0

    # -- llhttp's callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._messages += 1
        if self.complete:  # a second answer behind the first: not this call's, and not the next's
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:
            return
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise ConnectionFailed("the answer's head is too large")
        self._raw.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 or self.complete:
            return  # an interim answer (RFC 9110 §15.2): its fields are dropped at its end
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict(self._raw))
        self._framed = "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
        if not self._head_ready.done():
            self._head_ready.set_result(None)

    def on_body(self, chunk: bytes) -> None:
        if self.overflow or self.complete:
            return
        self._size += len(chunk)
        self._body.append(chunk)
        if self._size > self._limit:
            self.overflow = True
            self._finish()

    def on_message_complete(self) -> None:
        if self.status == 0:  # the end of an interim answer: the real one follows
            self._raw = []
            self._head_bytes = 0
            self._messages = 0
            return
        if self.complete:
            return
        self.keep_alive = self.parser.should_keep_alive() and self._messages == 1 and not self.overflow
        self._finish()

    # -- the connection's events ---------------------------------------------------------------

    def _finish(self) -> None:
        self.complete = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def fail(self, error: BaseException) -> None:
        """The connection broke: whatever waits on this answer gets ``error``."""
        if self.complete:
            return
        self.error = error
        for waiter in (self._head_ready, self._done):
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # retrieved here: the caller may already have gone (its deadline)

    def eof(self) -> None:
        """The connection ended: the end of a body framed by it (RFC 9112 §6.3, rule 8), else a loss."""
        if self.complete:
            return
        if self.status and not self._framed and self.status not in (204, 304):
            self.keep_alive = False
            self._finish()
        else:
            self.fail(ConnectionFailed("the connection closed before the whole answer"))

    # -- what the caller reads (:class:`gateway.upstream.client.UpstreamResponse`) --------------

    @property
    def content(self) -> _Answer:
        return self

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The whole body in one piece (at most ``limit + 1`` bytes), once it is in."""
        if not self.complete and self.error is None:
            self._done = self._loop.create_future()
            await self._done
        if self.error is not None:
            raise self.error
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        coding = self.headers.get("Content-Encoding", "").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate") and not self.overflow:
            body = _decoded(body, coding, self._limit)
        yield body[: self._limit + 1]


_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


def _decoded(body: bytes, coding: str, limit: int) -> bytes:
    """``gzip`` or ``deflate`` undone, never to more than ``limit + 1`` bytes (a small bomb stays small)."""
    wbits = 16 + zlib.MAX_WBITS if coding != "deflate" else (zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS)
    try:
        return zlib.decompressobj(wbits).decompress(body, limit + 1)
    except zlib.error:
        raise ConnectionFailed(f"the answer's {coding} coding is broken") from None


class _Connection(asyncio.Protocol):
    """One kept connection: bytes in go to the answer being read, or close it when none is."""

    __slots__ = ("key", "transport", "answer", "lost", "idle_since")

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.answer: _Answer | None = None
        self.lost = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one in all but its class

    def data_received(self, data: bytes) -> None:
        answer = self.answer
        if answer is None or answer.complete:  # nobody asked: the connection can not be trusted
            self.close()
            return
        try:
            answer.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # a callback's own error comes as its context
            cause = exc.__context__
            answer.fail(cause if isinstance(cause, ConnectionFailed) else ConnectionFailed(f"the answer is not HTTP/1.1: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close: a half-closed connection carries no further answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.answer is not None:
            self.answer.eof()

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def usable(self, now: float, idle_seconds: float) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing() and (
            now - self.idle_since < idle_seconds
        )

    def quiet(self) -> bool:
        """Nothing to read on the idle socket: no end the loop has not seen yet, no stray bytes.

        A server that closed a kept connection a moment ago (its idle timeout) has sent its FIN,
        which the loop may not have read yet; a request written now would be lost with it, and a
        token request is never retried. One ``poll`` with no wait finds it (as urllib3 does).
        """
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        poll = select.poll()  # not select(): descriptors past 1024 are common in a busy gateway
        try:
            poll.register(sock.fileno(), select.POLLIN)
            return not poll.poll(0)
        except (OSError, ValueError):
            return False


class _HostPool:
    __slots__ = ("idle", "busy")

    def __init__(self) -> None:
        self.idle: list[_Connection] = []
        self.busy = 0


class Http1Client:
    """The pool, and :meth:`request` (the shape :class:`gateway.upstream.client.UpstreamClient` names)."""

    def __init__(
        self,
        *,
        limit: int = 256,
        limit_per_host: int = 64,
        idle_seconds: float = 15.0,
        max_body: int = 64 * 1024,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "gateway",
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._idle_seconds = idle_seconds
        self._max_body = max_body
        self._resolver = resolver
        self._ssl = ssl_context
        self._agent = user_agent
        self._pools: dict[tuple[str, str, int], _HostPool] = {}
        self._busy = 0
        self._waiters: deque[tuple[tuple[str, str, int], asyncio.Future[None]]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> _Call:
        return _Call(self, method, url, params, data, headers)

    async def close(self) -> None:
        """Close the idle connections now and each busy one when its call ends."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for pool in self._pools.values():
            for connection in pool.idle:
                connection.close()
            pool.idle.clear()
        if self._resolver is not None:
            await self._resolver.close()

    # -- slots and connections -----------------------------------------------------------------

    async def _acquire(self, key: tuple[str, str, int]) -> _Connection:
        if self._closed:
            raise ConnectionFailed("the upstream client is closed")
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _HostPool()
        while pool.busy >= self._limit_per_host or self._busy >= self._limit:
            await self._wait_for_slot(key)
            pool = self._pools.setdefault(key, pool)
        pool.busy += 1
        self._busy += 1
        try:
            now = time.monotonic()
            idle = pool.idle
            while idle:
                connection = idle.pop()  # the most recent: the least likely to have been closed
                if connection.usable(now, self._idle_seconds) and connection.quiet():
                    return connection
                connection.close()
            return await self._connect(key)
        except BaseException:
            self._free_slot(key, pool)
            raise

    async def _wait_for_slot(self, key: tuple[str, str, int]) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (key, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif waiter.done() and not waiter.cancelled():
                self._wake()  # woken, then gone (its deadline): the slot goes to the next caller
            raise

    def _free_slot(self, key: tuple[str, str, int], pool: _HostPool) -> None:
        pool.busy -= 1
        self._busy -= 1
        if not pool.busy and not pool.idle and self._pools.get(key) is pool:
            del self._pools[key]
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        """Wake the first waiter whose host has room (in all and per host), if any."""
        if self._busy >= self._limit:
            return
        for entry in self._waiters:
            key, waiter = entry
            pool = self._pools.get(key)
            if pool is None or pool.busy < self._limit_per_host:
                self._waiters.remove(entry)
                if not waiter.done():
                    waiter.set_result(None)
                return

    def _release(self, connection: _Connection, reusable: bool) -> None:
        key = connection.key
        pool = self._pools[key]
        connection.answer = None
        if reusable and not self._closed and not connection.lost:
            connection.idle_since = time.monotonic()
            pool.idle.append(connection)
            if self._sweep is None:
                self._sweep = asyncio.get_running_loop().call_later(self._idle_seconds, self._sweep_idle)
        else:
            connection.close()
        self._free_slot(key, pool)

    def _sweep_idle(self) -> None:
        """Close the connections idle for ``idle_seconds``; come back while any are idle."""
        self._sweep = None
        now = time.monotonic()
        for key, pool in list(self._pools.items()):
            kept = [connection for connection in pool.idle if connection.usable(now, self._idle_seconds)]
            for connection in pool.idle:
                if connection not in kept:
                    connection.close()
            pool.idle = kept
            if not pool.busy and not kept:
                del self._pools[key]
        if any(pool.idle for pool in self._pools.values()):
            self._sweep = asyncio.get_running_loop().call_later(self._idle_seconds, self._sweep_idle)

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        addresses = await self._addresses(loop, host, port)
        try:
            # Happy Eyeballs (RFC 8305): a name with an address that does not answer (an IPv6
            # route that goes nowhere) costs a quarter of a second, not the whole deadline.
            sock = await aiohappyeyeballs.start_connection(addresses, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1)
            _, connection = await loop.create_connection(
                lambda: _Connection(key), sock=sock, ssl=tls, server_hostname=host if tls else None
            )
        except OSError as exc:
            raise ConnectionFailed(f"no connection to {host}: {type(exc).__name__}") from None
        return connection

    async def _addresses(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> Sequence[_AddrInfo]:
        """The addresses to try: the loop's ``getaddrinfo``, or only what ``resolver`` vetted (never a second lookup)."""
        if self._resolver is None:
            try:
                return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise LookupFailed(f"{host} could not be resolved", exc) from None
        try:
            answers = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        except OSError as exc:
            raise LookupFailed(f"{host} could not be resolved", exc) from None
        return [
            (
                answer["family"], socket.SOCK_STREAM, answer["proto"] or socket.IPPROTO_TCP, "",
                (answer["host"], answer["port"], 0, 0) if answer["family"] == socket.AF_INET6 else (answer["host"], answer["port"]),
            )
            for answer in answers
        ]


class _Call:
    """One call: a slot and a connection, the head and body written, the answer's head awaited.

    Used as ``async with client.request(...) as answer``; leaving the block gives the connection
    back to the pool when its answer was read whole and allows it, else closes it.
    """

    __slots__ = ("_client", "_method", "_url", "_params", "_data", "_headers", "_connection", "_answer", "_ends")

    def __init__(
        self, client: Http1Client, method: str, url: str, params: Mapping[str, str] | None, data: bytes | None,
        headers: Mapping[str, str],
    ) -> None:
        self._client = client
        self._method = method
        self._url = url
        self._params = params
        self._data = data
        self._headers = headers
        self._connection: _Connection | None = None
        self._answer: _Answer | None = None
        self._ends: list[CallEnd] = []

    async def __aenter__(self) -> _Answer:
        client = self._client
        destination = _destination(self._url)
        target = destination.target
        if self._params:
            target += ("&" if "?" in target else "?") + form_urlencode(self._params)
        headers = self._headers
        if _observers:
            headers = dict(headers)
            self._ends = [observe(self._method, self._url, headers) for observe in _observers]
        try:
            head = _head(self._method, target, destination.host_header, headers, self._data, client._agent)
            connection = self._connection = await client._acquire((destination.scheme, destination.host, destination.port))
            answer = self._answer = connection.answer = _Answer(asyncio.get_running_loop(), client._max_body)
            assert connection.transport is not None
            connection.transport.write(head + self._data if self._data else head)
            if not answer._head_ready.done():
                await answer._head_ready
            elif answer.error is not None:
                raise answer.error
        except BaseException as exc:
            self._end(exc)
            raise
        return answer

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._end(error)

    def _end(self, error: BaseException | None) -> None:
        answer = self._answer
        if self._connection is not None:
            reusable = error is None and answer is not None and answer.complete and answer.keep_alive
            self._client._release(self._connection, reusable)
            self._connection = None
        for end in self._ends:
            end(answer.status if answer is not None and answer.status else None, error)
        self._ends = []
