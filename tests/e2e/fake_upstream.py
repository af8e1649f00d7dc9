"""A small, real OAuth2 authorization server on 127.0.0.1 for load and fault tests.

Not a replacement for the oidc-provider tests (those check the gateway against a real, strict
implementation); this one is fast, fully in memory and misbehaves on demand:

* ``GET /authorize`` answers at once — no login, no consent — with a 302 to the ``redirect_uri``
  it was given, carrying ``code=<random>&state=<state>&iss=<issuer>`` (RFC 6749 §4.1.2, RFC 9207).
  Issued codes are remembered with their client, redirect URI and scope.
* ``POST /token`` (any method, in fact) authenticates the client (HTTP Basic or body, RFC 6749
  §2.3.1) and answers a standard JSON token (§5.1) for a known, *unused* code (single use,
  §4.1.2) whose redirect URI matches, or for a known, unused refresh token (rotating: each
  refresh token works once and the answer carries the next one, §6 / RFC 9700 §4.14.2).
  Anything else gets 400 ``invalid_grant``; bad client credentials get 401 ``invalid_client``.
  Every token encodes the code its lineage started from (:func:`code_of`), so a test can map
  a token back to the flow that produced it.
* ``GET /userinfo`` with ``Authorization: Bearer <access token>`` answers ``{"sub", "code"}`` for
  a live access token, 401 otherwise: "the token works".

Every request is recorded (:attr:`FakeUpstream.requests`). The token endpoint's behaviour is
driven per request by a :class:`Fault` (delay, status, body, content type, headers, a connection
closed before or during the answer, a chunked or slow body, a stalled body, no answer at all):
``upstream.fault = Fault(...)`` for every token request from now on,
``upstream.faults.append(Fault(...))`` for the next one only (queued faults come first), or
``upstream.fault_for = lambda request: ...`` to choose by the request itself (under load).

Usage::

    async with FakeUpstream() as upstream:
        upstream.fault = Fault(status=503, body="<html>down</html>", content_type="text/html")
        ...  # point a mapping at upstream.authorization_endpoint / upstream.token_endpoint
        assert len(upstream.token_requests) == 1
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote_plus, urlencode

from aiohttp import web

__all__ = ["Fault", "Recorded", "Grant", "FakeUpstream", "code_of", "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET"]

DEFAULT_CLIENT_ID = "gateway-client"
DEFAULT_CLIENT_SECRET = "gateway-client-secret"

#: The longest any fault waits, whatever it asks for: nothing here outlives a test by much.
MAX_WAIT = 30.0


@dataclass(frozen=True)
class Fault:
    """How the token endpoint answers one request. The defaults answer normally.

    The grant is processed (a code spent, a refresh token rotated) unless the fault *replaces*
    the answer (``status`` or ``body`` set) or drops it (``hang``, ``disconnect="before_headers"``):
    a slow upstream still did its work, it was just late.
    """

    delay: float = 0.0
    """Seconds to wait before sending anything."""
    status: int | None = None
    """Answer with this HTTP status instead of the normal answer (body: ``body``, else empty)."""
    body: bytes | str | Mapping[str, Any] | list[Any] | None = None
    """Answer with this body instead of the normal answer (a mapping or list is sent as JSON)."""
    content_type: str | None = None
    """Content-Type of a replaced answer (default: JSON for a mapping or list, else none at all)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers (``Retry-After``, ``Location``, ``WWW-Authenticate``)."""
    disconnect: Literal["before_headers", "mid_body"] | None = None
    """Close the connection before any byte of the answer, or halfway through its body (the
    headers promise a Content-Length the body never reaches)."""
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
        return self.hang or self.disconnect == "before_headers"


@dataclass(frozen=True)
class Recorded:
    """One request as the fake upstream received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased (a repeated header keeps its last value)."""
    form: dict[str, str]
    """The body parsed as ``application/x-www-form-urlencoded`` (JSON objects too, stringified)."""
    body: bytes
    at: float
    """``time.monotonic()`` when the request arrived."""

    @property
    def grant_type(self) -> str:
        return self.form.get("grant_type") or self.query.get("grant_type", "")

    def param(self, name: str) -> str | None:
        """A token request parameter, wherever the mapping put it (body or query string)."""
        return self.form.get(name, self.query.get(name))


@dataclass
class Grant:
    """What the fake upstream remembers about one code and the tokens it led to."""

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
        raise ValueError(f"not a token of the fake upstream: {token[:20]!r}")
    return parts[1]


class FakeUpstream:
    """The fake authorization server. Start it with ``async with FakeUpstream() as upstream``."""

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        expires_in: int = 3600,
        host: str = "127.0.0.1",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.host = host
        self.port = 0
        self.fault: Fault | None = None
        """Applied to every token request (after the queued ones)."""
        self.faults: deque[Fault] = deque()
        """Applied to the next token requests, one each, before anything else."""
        self.fault_for: Callable[[Recorded], Fault | None] | None = None
        """Chooses a fault from the request itself (None: fall through to :attr:`fault`); under
        concurrency this is how a test knows which request met which fault."""
        self.requests: list[Recorded] = []
        self.grants: dict[str, Grant] = {}
        self._by_refresh: dict[str, Grant] = {}
        self._by_access: dict[str, Grant] = {}
        self._serial = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- addresses -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.url}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.url}/userinfo"

    # -- what happened ---------------------------------------------------------------------------

    @property
    def token_requests(self) -> list[Recorded]:
        return [request for request in self.requests if request.path == "/token"]

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
        grant = self.grants[self.issue_code(redirect_uri, scope=scope)]
        grant.code_used = True
        return str(self._issue(grant)["refresh_token"])

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> FakeUpstream:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_route("*", "/token", self._token)
        app.router.add_get("/userinfo", self._userinfo)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.05, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self._closing.set()  # releases hanging and stalling answers
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- endpoints -------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Recorded:
        body = await request.read()
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
            request.method,
            request.path,
            dict(request.query),
            {name.lower(): value for name, value in request.headers.items()},
            form,
            body,
            time.monotonic(),
        )
        self.requests.append(recorded)
        return recorded

    async def _authorize(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        query = recorded.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri.startswith(("http://", "https://")):
            return web.Response(status=400, text="unknown client or bad redirect_uri", content_type="text/plain")
        if query.get("response_type") != "code":
            params = {"error": "unsupported_response_type", "state": query.get("state", ""), "iss": self.issuer}
        else:
            code = self.issue_code(redirect_uri, client_id=self.client_id, scope=query.get("scope", ""))
            params = {"code": code, "state": query.get("state", ""), "iss": self.issuer}
        separator = "&" if "?" in redirect_uri else "?"
        return web.Response(status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"})

    async def _userinfo(self, request: web.Request) -> web.Response:
        await self._record(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = self._by_access.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant.access_tokens[-1] != token:
            return web.json_response({"error": "invalid_token"}, status=401, headers={"WWW-Authenticate": "Bearer"})
        return web.json_response({"sub": f"user-{grant.code}", "code": grant.code})

    def _next_fault(self, recorded: Recorded) -> Fault:
        if self.faults:
            return self.faults.popleft()
        chosen = self.fault_for(recorded) if self.fault_for is not None else None
        return chosen or self.fault or Fault()

    async def _token(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        fault = self._next_fault(recorded)
        if fault.hang:
            await self._wait(MAX_WAIT)
            return _drop(request)
        if fault.delay:
            await self._wait(fault.delay)
        if fault.disconnect == "before_headers":
            return _drop(request)
        if fault.replaces_answer:
            status = fault.status if fault.status is not None else 200
            body, content_type = _encode(fault.body, fault.content_type)
        else:
            status, document = self._grant(recorded)
            body, content_type = _encode(document, None)
        return await self._send(request, fault, status, body, content_type)

    async def _send(
        self, request: web.Request, fault: Fault, status: int, body: bytes, content_type: str | None
    ) -> web.StreamResponse:
        headers = {"Cache-Control": "no-store", **fault.headers}
        if content_type:
            headers["Content-Type"] = content_type
        response = web.StreamResponse(status=status, headers=headers)
        pieces = _split(body, max(1, fault.chunks))
        if fault.chunks > 1 or fault.stall:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        if fault.disconnect == "mid_body":
            # Content-Length promises the whole body; half of it arrives, then the socket closes.
            await response.write(body[: len(body) // 2])
            await asyncio.sleep(0.01)  # let the half reach the client
            _drop(request)
            return response  # aiohttp's write_eof meets the closed socket and lets it be
        for index, piece in enumerate(pieces):
            if index and fault.chunk_delay:
                await self._wait(fault.chunk_delay)
            if piece:
                await response.write(piece)
            if index == 0 and fault.stall:
                await self._wait(fault.stall)
        await response.write_eof()
        return response

    async def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` (at most :data:`MAX_WAIT`), or until the server stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), min(seconds, MAX_WAIT))

    # -- the OAuth2 part ---------------------------------------------------------------------------

    def _client_ok(self, recorded: Recorded) -> bool:
        authorization = recorded.headers.get("authorization", "")
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                return False
            return (unquote_plus(client_id), unquote_plus(client_secret)) == (self.client_id, self.client_secret)
        return (recorded.param("client_id"), recorded.param("client_secret")) == (self.client_id, self.client_secret)

    def _grant(self, recorded: Recorded) -> tuple[int, dict[str, Any]]:
        """RFC 6749 §5.1/§5.2: (status, JSON document) for a token request."""
        if not self._client_ok(recorded):
            return 401, {"error": "invalid_client", "error_description": "client authentication failed"}
        grant_type = recorded.grant_type
        if grant_type == "authorization_code":
            grant = self.grants.get(recorded.param("code") or "")
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
        return document


def _encode(body: bytes | str | Mapping[str, Any] | list[Any] | None, content_type: str | None) -> tuple[bytes, str | None]:
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


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the socket under ``request`` at once; the answer returned never reaches anyone
    (aiohttp meets the closed socket when it writes it, and lets it be without a traceback)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)
