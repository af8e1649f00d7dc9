"""The recording upstream: one configurable test double for every upstream the tests talk to.

A small, real OAuth2 authorization server on 127.0.0.1 (or any loopback address) that answers as a
test says and records what it received. Not a replacement for the oidc-provider tests (those check
the gateway against a real, strict implementation); this one is fast, fully in memory and
misbehaves on demand.

Built-in endpoints (an OAuth2 server that follows the rules):

* ``GET /authorize`` answers at once — no login, no consent — with a 302 to the ``redirect_uri``
  it was given, carrying ``code=<random>&state=<state>&iss=<issuer>`` (RFC 6749 §4.1.2, RFC 9207).
* ``POST /token`` (any method) authenticates the client (HTTP Basic or body, RFC 6749 §2.3.1) and
  answers a standard JSON token (§5.1) for a known, *unused* code (single use, §4.1.2) whose
  redirect URI matches, or for a known, unused refresh token (rotating: each works once and the
  answer carries the next one, §6 / RFC 9700 §4.14.2). Anything else: 400 ``invalid_grant``; bad
  client credentials: 401 ``invalid_client``. Every token names the code its lineage started from
  (:func:`code_of`).
* ``GET /userinfo`` with a live ``Bearer`` access token answers ``{"sub", "code"}``, else 401.

Any path (built-in or not) can be given its own answers, per request, as a :class:`Reply`: a
status, a body (bytes, text, or JSON for a mapping or list), a Content-Type, headers, and faults —
a delay, a connection reset before or during the answer, a chunked, slow or stalled body, no
answer at all. For each request to a path the first of these that applies answers:

1. the next queued reply (``upstream.queue(path, Reply(...), ...)``: one request each);
2. the chooser (``upstream.answer(path, lambda recorded: Reply(...) or None)``: under
   concurrency, this is how a test knows which request met which answer);
3. the standing reply (``upstream.answer(path, Reply(...))``: every request from now on);
4. the built-in endpoint; a path without one answers 500 "no answer configured".

A reply that sets neither ``status`` nor ``body`` keeps the built-in answer and only adds its
faults (a slow upstream still did its work, it was just late). ``upstream.fault``,
``upstream.faults`` and ``upstream.fault_for`` are the token endpoint's standing reply, queue and
chooser.

Every request is recorded (:attr:`RecordingUpstream.requests`, a :class:`Recorded` each: method,
path, query, headers, form, body, arrival time) with helpers to find and check them
(:meth:`~RecordingUpstream.requests_to`, :meth:`~RecordingUpstream.only`, :meth:`Recorded.mismatches`).

The same answers can be had without a socket: :meth:`RecordingUpstream.client` is an
:class:`gateway.upstream.client.UpstreamClient` (in the spirit of httpx's ``MockTransport``) for
:func:`gateway.upstream.client.send`, so answer-classification cases run in-process.

Usage::

    async with RecordingUpstream() as upstream:
        upstream.fault = Reply(status=503, body="<html>down</html>", content_type="text/html")
        ...  # point a mapping at upstream.authorization_endpoint / upstream.token_endpoint
        assert len(upstream.token_requests) == 1
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import secrets
import socket
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.upstream.client import UpstreamResponse
from gateway.upstream.http1 import ConnectionFailed

__all__ = [
    "AuthorizationServer",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "TOKEN_PATH",
    "ClientCall",
    "Fault",
    "Grant",
    "Recorded",
    "RecordingUpstream",
    "Reply",
    "code_of",
]

DEFAULT_CLIENT_ID = "gateway-client"
DEFAULT_CLIENT_SECRET = "gateway-client-secret"
TOKEN_PATH = "/token"

#: The longest any fault waits, whatever it asks for: nothing here outlives a test by much.
MAX_WAIT = 30.0

Body = bytes | str | Mapping[str, Any] | list[Any]


class AuthorizationServer(Protocol):
    """What a test mapping needs of an upstream: the real oidc-provider
    (``support.oidc_provider.OidcUpstream``) and :class:`RecordingUpstream` both have it."""

    @property
    def issuer(self) -> str: ...
    @property
    def authorization_endpoint(self) -> str: ...
    @property
    def token_endpoint(self) -> str: ...


@dataclass(frozen=True)
class Reply:
    """How an endpoint answers one request. The defaults give the built-in answer, unchanged.

    The grant is processed (a code spent, a refresh token rotated) unless the reply *replaces*
    the answer (``status`` or ``body`` set) or drops it (``hang``, ``disconnect="before_headers"``).
    """

    delay: float = 0.0
    """Seconds to wait before sending anything."""
    status: int | None = None
    """Answer with this HTTP status instead of the built-in answer (body: ``body``, else empty)."""
    body: Body | None = None
    """Answer with this body instead of the built-in answer (a mapping or list is sent as JSON)."""
    content_type: str | None = None
    """Content-Type of a replaced answer (default: JSON for a mapping or list, else none at all)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers (``Retry-After``, ``Location``, ``WWW-Authenticate``)."""
    disconnect: Literal["refuse", "before_headers", "mid_body"] | None = None
    """Close the connection before any byte of the answer, or halfway through its body (the
    headers promise a Content-Length the body never reaches). ``refuse``: in-process, the
    connection fails before the request is sent (``ConnectionFailed``); a listening
    server can only reset it, as ``before_headers``."""
    chunks: int = 1
    """Send the body with chunked transfer encoding, in this many pieces (when > 1)."""
    chunk_delay: float = 0.0
    """Seconds between two pieces of a chunked body (a slow network)."""
    stall: float = 0.0
    """Seconds to stall after the headers and the first piece of the body (a stalled body)."""
    hang: bool = False
    """Accept the request and never answer (until the server stops)."""

    @property
    def replaces_answer(self) -> bool:
        return self.status is not None or self.body is not None

    @property
    def drops_answer(self) -> bool:
        return self.hang or self.disconnect in ("refuse", "before_headers")


#: The name the fault tests use for a :class:`Reply` (the same class: one home).
Fault = Reply


@dataclass(frozen=True)
class ClientCall:
    """What the in-process client was handed beyond the HTTP request itself (no server sees it)."""

    params: Mapping[str, str] | None


@dataclass(frozen=True)
class Recorded:
    """One request as the recording upstream received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased (a repeated header keeps its last value)."""
    form: dict[str, str]
    """The body parsed as ``application/x-www-form-urlencoded`` (a JSON object too, stringified)."""
    body: bytes
    at: float
    """``time.monotonic()`` when the request arrived."""
    host: str = "127.0.0.1"
    """The address (or host name, in-process) the request was sent to."""
    call: ClientCall | None = None
    """In-process only: the client arguments :func:`~gateway.upstream.client.send` passed."""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    @property
    def grant_type(self) -> str:
        return self.form.get("grant_type") or self.query.get("grant_type", "")

    def param(self, name: str) -> str | None:
        """A token request parameter, wherever the mapping put it (body or query string)."""
        return self.form.get(name, self.query.get(name))

    @property
    def params(self) -> dict[str, str]:
        """Query string and body parameters together (the body wins a name in both)."""
        return {**self.query, **self.form}

    def json(self) -> Any:
        return json.loads(self.body)

    def basic_credentials(self) -> tuple[str, str] | None:
        """RFC 6749 §2.3.1: the (client id, secret) of an HTTP Basic ``Authorization``, decoded."""
        scheme, _, encoded = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client_id, colon, client_secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return None
        return (unquote_plus(client_id), unquote_plus(client_secret)) if colon else None

    def mismatches(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        form: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str | None] | None = None,
        absent: Iterable[str] = (),
    ) -> list[str]:
        """How this request differs from what is expected (empty when it matches).

        ``form`` and ``query``: exactly these parameters; ``headers``: at least these (a value of
        None: present, whatever its value); ``absent``: parameters that must be nowhere."""
        problems: list[str] = []
        if method is not None and self.method != method:
            problems.append(f"method must be {method}, not {self.method}")
        if path is not None and self.path != path:
            problems.append(f"path must be {path}, not {self.path}")
        if form is not None and self.form != dict(form):
            problems.append(f"form must be {dict(form)}, not {self.form}")
        if query is not None and self.query != dict(query):
            problems.append(f"query must be {dict(query)}, not {self.query}")
        for name, wanted in (headers or {}).items():
            got = self.headers.get(name.lower())
            if got is None or (wanted is not None and got != wanted):
                problems.append(f"header {name} must be {wanted or 'present'}, not {got!r}")
        problems += [f"parameter {name} must not be sent" for name in absent if name in self.params]
        return problems

    def assert_matches(self, **expected: Any) -> None:
        """:meth:`mismatches`, as an assertion that names every difference."""
        problems = self.mismatches(**expected)
        assert not problems, "; ".join(problems)


@dataclass
class Grant:
    """What the built-in server remembers about one code and the tokens it led to."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_used: bool = False
    refresh_tokens: dict[str, bool] = field(default_factory=dict)  # token → used
    access_tokens: list[str] = field(default_factory=list)


def code_of(token: str) -> str:
    """The upstream code a token of this server descends from (``at.<code>.<n>``/``rt.<code>.<n>``)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] not in ("at", "rt"):
        raise ValueError(f"not a token of the recording upstream: {token[:20]!r}")
    return parts[1]


Chooser = Callable[[Recorded], "Reply | None | Awaitable[Reply | None]"]


@dataclass
class _Endpoint:
    queue: deque[Reply] = field(default_factory=deque)
    choose: Chooser | None = None
    reply: Reply | None = None


@dataclass(frozen=True)
class _Answer:
    """A reply made concrete: what is sent, and how."""

    status: int
    headers: dict[str, str]
    body: bytes
    reply: Reply


class RecordingUpstream:
    """The recording upstream. Start it with ``async with RecordingUpstream() as upstream``.

    ``hosts``: further loopback addresses served on the same port (one "regional" upstream)."""

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        expires_in: int = 3600,
        host: str = "127.0.0.1",
        hosts: Iterable[str] = (),
        lax_codes: bool = False,
    ) -> None:
        self.client_id = client_id
        self.lax_codes = lax_codes
        """Take any code, as often as asked, whatever the redirect URI (a deliberately lax upstream:
        then only the gateway's own guards stand between a replayed code and a token)."""
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.host = host
        self.hosts = (host, *hosts)
        self.port = 0
        self.requests: list[Recorded] = []
        self.grants: dict[str, Grant] = {}
        self.issued: list[dict[str, Any]] = []
        """Every token document the built-in server issued, in order."""
        self._endpoints: defaultdict[str, _Endpoint] = defaultdict(_Endpoint)
        self._by_refresh: dict[str, Grant] = {}
        self._by_access: dict[str, Grant] = {}
        self._serial = 0
        self._arrived = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- addresses -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_of(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.url}/userinfo"

    # -- how it answers --------------------------------------------------------------------------

    def answer(self, path: str, reply: Reply | Chooser | None) -> None:
        """Every request to ``path`` from now on gets ``reply`` (a :class:`Reply`), or what the
        chooser returns for it (None: fall through to the standing reply, then the built-in one).
        None clears both."""
        endpoint = self._endpoints[path]
        if reply is None:
            endpoint.reply, endpoint.choose = None, None
        elif isinstance(reply, Reply):
            endpoint.reply = reply
        else:
            endpoint.choose = reply

    def queue(self, path: str, *replies: Reply) -> None:
        """The next requests to ``path`` get ``replies``, one each, before anything else."""
        self._endpoints[path].queue.extend(replies)

    def serve_discovery(self, prefix: str = "") -> str:
        """Answer ``{prefix}/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §3)
        for the issuer ``{url}{prefix}`` whose token endpoint is ``{prefix}/token``; return the issuer."""
        issuer = f"{self.url}{prefix}"
        self.answer(
            f"{prefix}/.well-known/openid-configuration",
            Reply(
                body={
                    "issuer": issuer,
                    "authorization_endpoint": f"{issuer}/authorize",
                    "token_endpoint": f"{issuer}/token",
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                    "code_challenge_methods_supported": ["S256"],
                    "response_types_supported": ["code"],
                }
            ),
        )
        return issuer

    @property
    def fault(self) -> Reply | None:
        """The token endpoint's standing reply (every token request, after the queued ones)."""
        return self._endpoints[TOKEN_PATH].reply

    @fault.setter
    def fault(self, reply: Reply | None) -> None:
        self._endpoints[TOKEN_PATH].reply = reply

    @property
    def faults(self) -> deque[Reply]:
        """The token endpoint's queue: the next token requests, one each, before anything else."""
        return self._endpoints[TOKEN_PATH].queue

    @property
    def fault_for(self) -> Chooser | None:
        """The token endpoint's chooser (None from it: fall through to :attr:`fault`)."""
        return self._endpoints[TOKEN_PATH].choose

    @fault_for.setter
    def fault_for(self, choose: Chooser | None) -> None:
        self._endpoints[TOKEN_PATH].choose = choose

    # -- what happened ---------------------------------------------------------------------------

    def requests_to(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path == path]

    def only(self, path: str = TOKEN_PATH) -> Recorded:
        """The one request to ``path`` (an assertion: exactly one arrived)."""
        found = self.requests_to(path)
        assert len(found) == 1, f"{len(found)} requests to {path}, not one: {[(r.method, r.form) for r in found]}"
        return found[0]

    async def wait_for(self, path: str = TOKEN_PATH, count: int = 1, *, timeout: float = 10.0) -> list[Recorded]:
        """The requests to ``path`` once ``count`` of them have arrived (an event, not a poll),
        within ``timeout`` seconds (else ``TimeoutError``: a wait always has a deadline)."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests_to(path)) >= count)
        return self.requests_to(path)

    @property
    def token_requests(self) -> list[Recorded]:
        return self.requests_to(TOKEN_PATH)

    @property
    def refresh_requests(self) -> list[Recorded]:
        """Token requests with ``grant_type=refresh_token``."""
        return [request for request in self.token_requests if request.grant_type == "refresh_token"]

    def refresh_token_live(self, token: str) -> bool:
        """The built-in server would still take ``token`` (issued here, not yet rotated away)."""
        grant = self._by_refresh.get(token)
        return grant is not None and not grant.refresh_tokens.get(token, True)

    def code_exchanges(self, code: str | None = None) -> list[Recorded]:
        """Token requests with ``grant_type=authorization_code`` (for ``code`` only, if given)."""
        return [
            request
            for request in self.token_requests
            if request.grant_type == "authorization_code" and (code is None or request.param("code") == code)
        ]

    # -- minting grants directly (tests that skip the browser leg) ------------------------------

    def issue_code(self, redirect_uri: str, *, client_id: str | None = None, scope: str = "") -> str:
        """A fresh code, as ``/authorize`` would issue it for ``redirect_uri``."""
        code = secrets.token_hex(12)
        self.grants[code] = Grant(code, client_id or self.client_id, redirect_uri, scope)
        return code

    def issue_refresh_token(self, *, redirect_uri: str = "", scope: str = "") -> str:
        """A fresh, unused refresh token (of a new grant whose code is already spent)."""
        return str(self.issue_tokens(redirect_uri=redirect_uri, scope=scope)["refresh_token"])

    def issue_tokens(self, *, redirect_uri: str = "", scope: str = "") -> dict[str, Any]:
        """The token document of a new grant whose code is already spent, as a code exchange answers it."""
        grant = self.grants[self.issue_code(redirect_uri, scope=scope)]
        grant.code_used = True
        return self._issue(grant)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> RecordingUpstream:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_route("*", "/{path:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.05, handler_cancellation=True)
        await self._runner.setup()
        socks = _bind_all(self.hosts)
        self.port = int(socks[0].getsockname()[1])
        for sock in socks:  # each site owns its socket from here: the runner's cleanup closes it
            await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        self._closing.set()  # releases hanging and stalling answers
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RecordingUpstream:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def client(self) -> InProcessClient:
        """An in-process :class:`~gateway.upstream.client.UpstreamClient` answering as this server
        would, without a socket (nothing needs to be started)."""
        return InProcessClient(self)

    # -- one request, whatever the transport -------------------------------------------------------

    def _record(
        self, method: str, path: str, query: Mapping[str, str], headers: Iterable[tuple[str, str]], body: bytes,
        host: str, call: ClientCall | None = None,
    ) -> Recorded:
        text = body.decode("utf-8", errors="replace")
        form: dict[str, str]
        if text.lstrip().startswith("{"):
            try:
                form = {str(k): str(v) for k, v in json.loads(text).items()}
            except (ValueError, AttributeError):
                form = {}
        else:
            form = dict(parse_qsl(text, keep_blank_values=True))
        recorded = Recorded(
            method, path, dict(query), {name.lower(): value for name, value in headers}, form, body, time.monotonic(), host, call
        )
        self.requests.append(recorded)
        return recorded

    async def _announce(self) -> None:
        """Wake :meth:`wait_for`: a request was recorded."""
        async with self._arrived:
            self._arrived.notify_all()

    async def _reply_for(self, recorded: Recorded) -> Reply:
        endpoint = self._endpoints[recorded.path]
        if endpoint.queue:
            return endpoint.queue.popleft()
        if endpoint.choose is not None:
            chosen = endpoint.choose(recorded)
            if inspect.isawaitable(chosen):
                chosen = await chosen
            if chosen is not None:
                return chosen
        return endpoint.reply or Reply()

    async def _answer(self, recorded: Recorded, reply: Reply) -> _Answer:
        """Wait the reply's delay, then the answer to send (the built-in one unless replaced)."""
        if reply.delay:
            await self._wait(reply.delay)
        headers = {"Cache-Control": "no-store", **reply.headers}
        if reply.replaces_answer:
            status = reply.status if reply.status is not None else 200
            body, content_type = _encode(reply.body, reply.content_type)
        else:
            status, document, more = self._builtin(recorded)
            headers.update(more)
            body, content_type = _encode(document, None)
        if content_type:
            headers["Content-Type"] = content_type
        return _Answer(status, headers, body, reply)

    async def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` (at most :data:`MAX_WAIT`), or until the server stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), min(seconds, MAX_WAIT))

    # -- the socket front end ------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        recorded = self._record(
            request.method, request.path, request.query, request.headers.items(), await request.read(),
            request.url.host or self.host,
        )
        await self._announce()
        reply = await self._reply_for(recorded)
        if reply.hang:
            await self._wait(MAX_WAIT)
            return _drop(request)
        if reply.disconnect in ("refuse", "before_headers"):
            if reply.delay:
                await self._wait(reply.delay)
            return _drop(request)
        answer = await self._answer(recorded, reply)
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        if reply.chunks > 1 or reply.stall:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(answer.body)
        await response.prepare(request)
        if reply.disconnect == "mid_body":
            # Content-Length promises the whole body; half of it arrives, then the socket closes.
            await response.write(answer.body[: len(answer.body) // 2])
            await asyncio.sleep(0.01)  # let the half reach the client
            _drop(request)
            return response  # aiohttp's write_eof meets the closed socket and lets it be
        async for piece in self._pieces(answer):
            await response.write(piece)
        await response.write_eof()
        return response

    async def _pieces(self, answer: _Answer) -> AsyncIterator[bytes]:
        """The body in the reply's pieces, with its pauses (a slow network, a stalled body)."""
        reply = answer.reply
        for index, piece in enumerate(_split(answer.body, max(1, reply.chunks))):
            if index and reply.chunk_delay:
                await self._wait(reply.chunk_delay)
            if piece:
                yield piece
            if index == 0 and reply.stall:
                await self._wait(reply.stall)

    # -- the built-in OAuth2 server ----------------------------------------------------------------

    def _builtin(self, recorded: Recorded) -> tuple[int, Mapping[str, Any] | None, dict[str, str]]:
        """(status, JSON document or None, headers) of the built-in endpoint at the request's path."""
        if recorded.path == TOKEN_PATH:
            status, document = self._grant(recorded)
            return status, document, {}
        if recorded.path == "/authorize" and recorded.method == "GET":
            return self._authorize(recorded)
        if recorded.path == "/userinfo" and recorded.method == "GET":
            return self._userinfo(recorded)
        return 500, {"error": "server_error", "error_description": f"the recording upstream has no answer for {recorded.path}"}, {}

    def _authorize(self, recorded: Recorded) -> tuple[int, Mapping[str, Any] | None, dict[str, str]]:
        query = recorded.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri.startswith(("http://", "https://")):
            return 400, {"error": "invalid_request", "error_description": "unknown client or bad redirect_uri"}, {}
        if query.get("response_type") != "code":
            params = {"error": "unsupported_response_type", "state": query.get("state", ""), "iss": self.issuer}
        else:
            code = self.issue_code(redirect_uri, client_id=self.client_id, scope=query.get("scope", ""))
            params = {"code": code, "state": query.get("state", ""), "iss": self.issuer}
        separator = "&" if "?" in redirect_uri else "?"
        return 302, None, {"Location": f"{redirect_uri}{separator}{urlencode(params)}"}

    def _userinfo(self, recorded: Recorded) -> tuple[int, Mapping[str, Any] | None, dict[str, str]]:
        scheme, _, token = recorded.headers.get("authorization", "").partition(" ")
        grant = self._by_access.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant.access_tokens[-1] != token:
            return 401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"}
        return 200, {"sub": f"user-{grant.code}", "code": grant.code}, {}

    def _client_ok(self, recorded: Recorded) -> bool:
        if recorded.headers.get("authorization", "").lower().startswith("basic"):
            return recorded.basic_credentials() == (self.client_id, self.client_secret)
        return (recorded.param("client_id"), recorded.param("client_secret")) == (self.client_id, self.client_secret)

    def _grant(self, recorded: Recorded) -> tuple[int, dict[str, Any]]:
        """RFC 6749 §5.1/§5.2: (status, JSON document) for a token request."""
        if not self._client_ok(recorded):
            return 401, {"error": "invalid_client", "error_description": "client authentication failed"}
        grant_type = recorded.grant_type
        if grant_type == "authorization_code":
            code = recorded.param("code") or ""
            if self.lax_codes:
                lax = self.grants.setdefault(code, Grant(code, self.client_id, recorded.param("redirect_uri") or "", ""))
                return 200, self._issue(lax)
            grant = self.grants.get(code)
            if grant is None or grant.code_used:
                return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
            if recorded.param("redirect_uri") != grant.redirect_uri:
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
            grant.code_used = True
            return 200, self._issue(grant)
        if grant_type == "refresh_token":
            token = recorded.param("refresh_token") or ""
            grant = self._by_refresh.get(token)
            if grant is None or grant.refresh_tokens.get(token, True):
                return 400, {"error": "invalid_grant", "error_description": "unknown or used refresh token"}
            grant.refresh_tokens[token] = True  # rotation: each refresh token works once
            return 200, self._issue(grant)
        return 400, {"error": "unsupported_grant_type"}

    def _issue(self, grant: Grant) -> dict[str, Any]:
        self._serial += 1
        access_token = f"at.{grant.code}.{self._serial}"
        refresh_token = f"rt.{grant.code}.{self._serial}"
        grant.access_tokens.append(access_token)
        grant.refresh_tokens[refresh_token] = False
        self._by_access[access_token] = grant
        self._by_refresh[refresh_token] = grant
        document: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh_token,
        }
        if grant.scope:
            document["scope"] = grant.scope
        self.issued.append(document)
        return document


# -- the in-process front end -------------------------------------------------------------------------


class _InProcessBody:
    def __init__(self, upstream: RecordingUpstream, answer: _Answer) -> None:
        self._upstream = upstream
        self._answer = answer

    async def iter_any(self) -> AsyncIterator[bytes]:
        if self._answer.reply.disconnect == "mid_body":
            yield self._answer.body[: len(self._answer.body) // 2]
            raise ConnectionFailed("the connection closed before the whole answer")  # as the client says it
        async for piece in self._upstream._pieces(self._answer):
            yield piece


@dataclass
class _InProcessResponse:
    status: int
    headers: CIMultiDictProxy[str]
    content: _InProcessBody


class InProcessClient:
    """An :class:`~gateway.upstream.client.UpstreamClient` whose answers come from a
    :class:`RecordingUpstream`'s configuration, without a socket. A reset is the exception the real client
    raises for it; a hang waits until the caller's deadline (or the upstream's stop)."""

    def __init__(self, upstream: RecordingUpstream) -> None:
        self.upstream = upstream

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        call = ClientCall(params)
        return self._respond(method, url, data or b"", headers, call)

    @asynccontextmanager
    async def _respond(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str], call: ClientCall
    ) -> AsyncIterator[UpstreamResponse]:
        upstream = self.upstream
        parts = urlsplit(url)
        query = {**dict(parse_qsl(parts.query, keep_blank_values=True)), **(call.params or {})}
        recorded = upstream._record(method, parts.path or "/", query, headers.items(), body, parts.hostname or "", call)
        await upstream._announce()
        reply = await upstream._reply_for(recorded)
        if reply.disconnect == "refuse":
            raise ConnectionFailed(f"no connection to {parts.hostname}: ConnectionRefusedError")
        if reply.hang:
            await upstream._wait(MAX_WAIT)
            raise ConnectionFailed("the connection closed before the whole answer")
        if reply.disconnect == "before_headers":
            if reply.delay:
                await upstream._wait(reply.delay)
            raise ConnectionFailed("the connection closed before the whole answer")
        answer = await upstream._answer(recorded, reply)
        yield _InProcessResponse(answer.status, CIMultiDictProxy(CIMultiDict(answer.headers)), _InProcessBody(upstream, answer))


# -- bytes on the wire --------------------------------------------------------------------------------


def _encode(body: Body | None, content_type: str | None) -> tuple[bytes, str | None]:
    if body is None:
        return b"", content_type
    if isinstance(body, bytes):
        return body, content_type
    if isinstance(body, str):
        return body.encode(), content_type
    return json.dumps(body).encode(), content_type or "application/json"


def _split(body: bytes, pieces: int) -> list[bytes]:
    size = max(1, -(-len(body) // pieces))
    return [body[start : start + size] for start in range(0, len(body), size)] or [b""]


def _bind_all(hosts: tuple[str, ...], attempts: int = 20) -> list[socket.socket]:
    """Sockets bound to one port on every host: the kernel picks it on the first host (port 0),
    the others bind it too, or all are closed and another port is tried. Bound before any server
    starts, so no other process can take the port in between (no free-port guess)."""
    for _ in range(attempts):
        socks: list[socket.socket] = []
        try:
            for host in hosts:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, int(socks[0].getsockname()[1]) if len(socks) > 1 else 0))
            return socks
        except OSError:
            for sock in socks:
                sock.close()
    raise OSError(f"no port free on all of {hosts} after {attempts} attempts")


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the socket under ``request`` at once; the answer returned never reaches anyone
    (aiohttp meets the closed socket when it writes it, and lets it be without a traceback)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)
