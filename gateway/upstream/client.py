"""Build the upstream token request the way the mapping says, send it, read the answer.

Order of application (docs/mapping-reference.md): the standard RFC 6749 §4.1.3 / §6 parameters
→ client authentication (``basic``: an ``Authorization`` header, RFC 6749 §2.3.1; ``body``:
``client_id`` + ``client_secret`` parameters; ``both``; ``none``: ``client_id`` only) → PKCE
``code_verifier`` → ``params`` verbs (remove → rename → add) → ``typed`` parameters → encoding
(``form`` body, ``json`` body, or ``query`` string of the POST) → ``headers`` verbs. A refresh uses
``refresh``'s URL, method and encoding when it names them; a code exchange with ``exchange`` is
followed by that second request (:func:`prepare_exchange_request`), built from no parameters.

:func:`send` returns what it measured with the answer (its status and seconds), or raises it with
the failure (:class:`Unreachable`, :class:`TooLarge`: the kind and seconds); the web layer records
both in the request's record. One shared :class:`~gateway.upstream.http1.Http1Client` serves every
upstream call; :func:`send` asks only for the little of it that :class:`UpstreamClient` names, so
tests can hand it an in-process double (in the spirit of httpx's ``MockTransport``) and classify
answers without sockets. Every call has a *total*
deadline (``upstream.timeout``, default 4 s) because Alexa abandons a token request after 4.5 s.
There is no retry: a retried code exchange could spend the code twice.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config.mapping import ParamRules, ProviderMapping, TokenRequest
from gateway.config.templates import UnsafeUrl, host_needs_public_address, render_url
from gateway.oauth.basicauth import basic_auth_header
from gateway.oauth.formencoding import form_urlencode
from gateway.oauth.responses import InvalidGrant, InvalidRequest, ServerError, TemporarilyUnavailable
from gateway.oauth.state import GrantType
from gateway.upstream.answer import MAX_ANSWER_BYTES, UpstreamAnswer, is_transient
from gateway.upstream.failure import FailureKind
from gateway.upstream.http1 import ConnectionFailed, LookupFailed
from gateway.upstream.publicdns import PrivateAddress

__all__ = [
    "PreparedRequest", "UpstreamClient", "UpstreamResponse", "prepare_token_request", "prepare_exchange_request", "send",
    "basic_auth_header", "Unreachable", "TooLarge",
]

log = logging.getLogger(__name__)


class UpstreamBody(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...


class UpstreamResponse(Protocol):
    """What :func:`send` reads of an answer."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> UpstreamBody: ...


class UpstreamClient(Protocol):
    """What :func:`send` needs of an HTTP client (:class:`~gateway.upstream.http1.Http1Client`).

    One request, never a redirect followed, no header added but ``Host``, ``Content-Length``,
    ``User-Agent`` and ``Accept-Encoding``; failures are
    :class:`~gateway.upstream.http1.ConnectionFailed` (or its ``LookupFailed``).
    """

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> AbstractAsyncContextManager[UpstreamResponse]: ...


#: A mapping's Basic header is the same on every call: encoded once per id and secret, not per request.
_basic_of = functools.lru_cache(maxsize=256)(basic_auth_header)

#: Characters no header value may hold (NUL, CR, LF and the other controls but tab).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Unreachable(TemporarilyUnavailable):
    """No whole answer within the deadline, or no connection (``timeout``, ``connection``), after ``seconds``."""

    def __init__(self, description: str, *, failure: FailureKind, seconds: float) -> None:
        super().__init__(description)
        self.failure: FailureKind = failure
        self.seconds = seconds


class TooLarge(ServerError):
    """An answer over :data:`~gateway.upstream.answer.MAX_ANSWER_BYTES` (``too_large``), after ``seconds``."""

    def __init__(self, description: str, *, seconds: float) -> None:
        super().__init__(description)
        self.failure: FailureKind = "too_large"
        self.seconds = seconds


@dataclass(frozen=True)
class PreparedRequest:
    """An upstream request ready to send (and to show in ``gateway check`` and tests)."""

    method: str
    url: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    form: Mapping[str, str] | None
    json_body: Mapping[str, Any] | None
    timeout: float | None
    #: The host came from a per-link value without ``allow_private``: the call connects only to its
    #: public addresses (:mod:`gateway.upstream.publicdns`).
    public_only: bool = False
    #: A code exchange with a second step (``upstream.token.exchange``): the template values it
    #: is prepared with (:func:`prepare_exchange_request`) once the first answer is in.
    exchange_values: Mapping[str, str] | None = None


def prepare_token_request(
    mapping: ProviderMapping,
    *,
    grant_type: GrantType,
    callback_url: str,
    code: str = "",
    refresh_token: str = "",
    code_verifier: str = "",
    scope: str = "",
    context: Mapping[str, str] | None = None,
) -> PreparedRequest:
    """``context``: the link's values (:mod:`gateway.oauth.linkcontext`) for the URL and templates."""
    rules: TokenRequest = mapping.token if grant_type == "authorization_code" else mapping.refresh
    params: dict[str, str] = {"grant_type": grant_type}
    if grant_type == "authorization_code":
        params.update(code=code, redirect_uri=callback_url)
        if code_verifier:
            params["code_verifier"] = code_verifier
    elif grant_type == "client_credentials" and mapping.client_credentials is not None:
        rules = mapping.client_credentials  # RFC 6749 §4.4.2: grant_type and an optional scope
        if scope:
            params["scope"] = scope
    else:
        params["refresh_token"] = refresh_token

    headers: dict[str, str] = {"Accept": "application/json"}
    _authenticate(mapping, rules, params, headers)
    if not rules.templated and (grant_type != "authorization_code" or mapping.exchange is None):
        return _prepared(mapping, rules, params, headers, None, None)  # no template to fill: no values

    basic = _basic_of(mapping.upstream_client_id, mapping.upstream_client_secret)
    values = {
        "client_id": mapping.upstream_client_id,
        "client_secret": mapping.upstream_client_secret,
        "redirect_uri": callback_url,
        "grant_type": grant_type,
        "code": code,
        "refresh_token": refresh_token,
        "code_verifier": code_verifier,
        "basic_auth": basic,
        "scope": scope,
    }
    known = {name: "" for name in mapping.flow_values} | {spec.name: "" for spec in mapping.context_specs}
    values |= known | {name: value for name, value in (context or {}).items() if name in known}
    if mapping.context_specs:  # a table of hosts: the placeholder stands for the value's host
        values |= {spec.name: spec.fills(values[spec.name]) for spec in mapping.context_specs if spec.hosts is not None}
    exchange_values = values if grant_type == "authorization_code" and mapping.exchange is not None else None
    return _prepared(mapping, rules, params, headers, values, exchange_values)


def prepare_exchange_request(mapping: ProviderMapping, values: Mapping[str, str], access_token: str) -> PreparedRequest:
    """The second step of a code exchange (``upstream.token.exchange``): its parameters start from
    none; ``{access_token}`` is the token the first answer held."""
    assert mapping.exchange is not None
    step = mapping.exchange
    params: dict[str, str] = {}
    headers: dict[str, str] = {"Accept": "application/json"}
    if step.authenticated:
        _authenticate(mapping, step.request, params, headers)
    return _prepared(mapping, step.request, params, headers, {**values, "access_token": access_token}, None)


def _authenticate(mapping: ProviderMapping, rules: TokenRequest, params: dict[str, str], headers: dict[str, str]) -> None:
    if rules.client_auth in ("basic", "both"):
        headers["Authorization"] = _basic_of(mapping.upstream_client_id, mapping.upstream_client_secret)
    if rules.client_auth in ("body", "both"):
        params["client_id"] = mapping.upstream_client_id
        params["client_secret"] = mapping.upstream_client_secret
    elif rules.client_auth == "none":
        params["client_id"] = mapping.upstream_client_id


def _prepared(
    mapping: ProviderMapping,
    rules: TokenRequest,
    params: dict[str, str],
    headers: dict[str, str],
    values: Mapping[str, str] | None,
    exchange_values: Mapping[str, str] | None,
) -> PreparedRequest:
    """The request ``rules`` make of ``params`` and ``headers`` (fresh dicts, taken over);
    ``values`` None: the rules fill no template (:attr:`TokenRequest.templated`), so the URL,
    parameters and headers are used as they are."""
    url, public_only = rules.url, False
    if values is not None:
        try:
            url = render_url(rules.url, values, mapping.context_specs)
        except UnsafeUrl as exc:
            raise InvalidGrant(f"the link's context can not be used: {exc}") from None
        public_only = host_needs_public_address(rules.url, mapping.context_specs)
        params = rules.params.apply(params, values)
        headers = rules.headers.apply(headers, values)
        if _fills_headers(rules.headers) and any(_CONTROL.search(value) for value in headers.values()):
            # A template filled with a value the platform sent (``{authorize_scope}``, ``{scope}``):
            # a header that could be split in two is the platform's mistake, not an outage (RFC 9110 §5.5).
            raise InvalidRequest("a value the upstream request's headers need holds a control character")

    query: dict[str, str] = {}
    form: dict[str, str] | None = None
    json_body: dict[str, Any] | None = None
    if rules.typed:  # Zendesk's expires_in: 1800 (most mappings have none: nothing to do per request)
        params |= {name: _as_text(value) for name, value in rules.typed}
    if rules.encoding == "query" or rules.method == "GET":
        query = params
    elif rules.encoding == "json":
        json_body = params if not rules.typed else {**params, **dict(rules.typed)}
    else:
        form = params
    return PreparedRequest(rules.method, url, query, headers, form, json_body, rules.timeout, public_only, exchange_values)


def _as_text(value: bool | int | float) -> str:
    """A typed value outside a JSON body: JSON's own spelling (``true``, ``1800``)."""
    return json.dumps(value)


def _fills_headers(rules: ParamRules) -> bool:
    """Whether header templates run (``add`` anywhere in the chain); most mappings: no, and no check."""
    step: ParamRules | None = rules
    while step is not None:
        if step.add:
            return True
        step = step.then
    return False


async def send(
    session: UpstreamClient,
    request: PreparedRequest,
    *,
    default_timeout: float,
    public_session: UpstreamClient | None = None,
) -> UpstreamAnswer:
    """Send once, within a total deadline; the answer carries its status and the seconds it took.

    :class:`Unreachable` (a ``TemporarilyUnavailable``) on timeout or no answer, :class:`TooLarge`
    (a ``ServerError``) for an answer over 64 KiB; each says its failure kind and seconds.

    Timeouts and connection failures become 503 ``temporarily_unavailable`` (never
    ``invalid_grant``: Google unlinks on that, and the grant may still be good). A request whose
    host a user named (``public_only``) goes through ``public_session``, which connects only to
    public addresses (:mod:`gateway.upstream.publicdns`): a host that resolves to another is the
    link's own fault (``invalid_grant``); a lookup that fails is refused like an unreachable host.
    """
    deadline = request.timeout or default_timeout
    if request.public_only:
        # Only the client whose connections go to checked public addresses, or no call at all.
        if public_session is None:
            raise ServerError("no public-only upstream client")
        session = public_session
    started = time.monotonic()
    data: bytes | None = None
    headers = dict(request.headers)
    if request.form is not None:
        data = form_urlencode(request.form).encode("ascii")
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif request.json_body is not None:
        data = json.dumps(request.json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    # No body (query encoding, GET): no Content-Type unless the mapping names one.
    try:
        async with asyncio.timeout(deadline):
            async with session.request(
                request.method,
                request.url,
                params=request.query or None,
                data=data,
                headers=headers,
            ) as response:
                body = b""
                async for chunk in response.content.iter_any():  # the whole answer, within the deadline
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        if is_transient(response.status):
                            body = b""  # a large outage page: its status is all that matters
                            break
                        raise TooLarge("upstream answer is larger than 64 KiB", seconds=time.monotonic() - started)
                return UpstreamAnswer(
                    response.status, response.headers.get("Content-Type", ""), body, time.monotonic() - started
                )
    except TimeoutError:
        log.warning("upstream %s timed out after %.1fs", request.url, deadline)
        raise Unreachable(
            f"upstream did not answer within {deadline:g}s", failure="timeout", seconds=time.monotonic() - started
        ) from None
    except LookupFailed as exc:
        if isinstance(exc.os_error, PrivateAddress):
            raise InvalidGrant("the link's context can not be used: the host resolves to a private address") from None
        log.warning("upstream %s failed: the host name could not be resolved", request.url)
        raise Unreachable("upstream could not be reached", failure="connection", seconds=time.monotonic() - started) from None
    except ConnectionFailed as exc:
        log.warning("upstream %s failed: %s", request.url, type(exc).__name__)
        raise Unreachable("upstream could not be reached", failure="connection", seconds=time.monotonic() - started) from None
