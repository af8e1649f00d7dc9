"""The flow trace: what happened to the last N account links, hop by hop, with every secret redacted.

All an integrator sees of a failed link is "We were unable to link … at this time" (Alexa) or
"Bad response from IdP" (Google). With ``trace: {token: …, flows: 200}`` in gateway.yaml each
replica keeps its last ``flows`` flows in memory (nothing is written anywhere) and serves them at
``/_trace/`` (a list of flows), ``/_trace/flow/<id>`` (one flow as a server-rendered sequence
diagram, lanes platform | gateway | upstream, no script) and ``/_trace/flows.json``.

What anyone can send must not cost the gateway much more than its size (a request's parameters
are the sender's to choose): a token request is recorded with its parameters only once its
client has authenticated (otherwise one small hop, joined to no flow); every hop is bounded
(:data:`MAX_HOP_BYTES`), every flow keeps :data:`MAX_HOPS` hops and :data:`MAX_KEYS` keys, and the
whole trace ``max_bytes`` bytes of its JSON, evicting by kind of flow (:class:`FlowTrace`). The
pages render one flow at a time, and the JSON a bounded slice, so none holds the event loop long.

Hops are correlated into one flow by the secrets that link them, each known only by its hash:
the flow nonce (the upstream ``state``), the sealed code the platform gets, and each refresh token
the platform was given. A value is only ever shown as ``sha256:`` and the first 8 hex digits of its
SHA-256 (:func:`redact`), never a prefix of the value. Each failed flow names the step that failed
and why, in :mod:`gateway.observe.reasons`' words (those of ``gateway linktest``); token steps carry
Google's account-linking step names (``AUTH_CODE_EXCHANGE``, ``REFRESH_ACCESS_TOKEN``).

Access: ``Authorization: Bearer <token>``, or, for the HTML page in a browser, a login form that
sets an HttpOnly, SameSite=Strict cookie holding a hash of the token (never a ``?token=`` query:
URLs end up in access logs and browser history). Both are compared in constant time; anything
else is 401. With tracing off the routes do not exist (404).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from gateway.config.models import DEFAULT_TRACE_MAX_BYTES
from gateway.config.settings import TraceSettings
from gateway.observe import reasons

if TYPE_CHECKING:  # config.py imports this module for TraceSettings; these import config
    from gateway.config.mapping import ProviderMapping
    from gateway.oauth.responses import OAuthError
    from gateway.upstream.answer import UpstreamAnswer
    from gateway.upstream.client import PreparedRequest

__all__ = [
    "TraceSettings", "FlowTrace", "Flow", "Hop", "TRACE", "redact", "add_routes", "render_flow",
    "authorized", "called_back", "redirected", "token_requested", "token_answered",
    "upstream_requested", "upstream_failed", "upstream_answered", "normalised", "normalise_failed",
]

PLATFORM, GATEWAY, UPSTREAM = "platform", "gateway", "upstream"
LANES = (PLATFORM, GATEWAY, UPSTREAM)
#: Google's account-linking step names (Google Home "Troubleshoot account linking").
GOOGLE_STEPS = {"authorization_code": "AUTH_CODE_EXCHANGE", "refresh_token": "REFRESH_ACCESS_TOKEN"}
#: Parameters and answer fields whose values are no secret and help to read a flow.
_SHOWN = frozenset({
    "grant_type", "response_type", "scope", "code_challenge_method", "error", "error_description",
    "token_type", "expires_in", "expires", "status", "action", "client_id", "redirect_uri", "app_id", "iss",
    "Accept", "Content-Type", "user_locale",
})
_COOKIE = "gateway_trace"
#: The default byte budget of the whole trace, counted in the JSON it serves (:func:`hop_size`).
DEFAULT_MAX_BYTES = DEFAULT_TRACE_MAX_BYTES

# Bounds of one hop, whoever sent it: a request's parameters are the sender's to choose, so a hop
# keeps at most this many of them, names and shown values cut short; an answer body's shape keeps
# at most ``_MAX_FIELDS`` fields over at most ``_MAX_DEPTH`` levels of nesting.
_MAX_PARAMS = 24
_MAX_NAME = 64
_MAX_VALUE = 200
_MAX_FIELDS = 40
_MAX_DEPTH = 3
_MAX_REASON = 400
#: A hop whose JSON would still be larger keeps only its step, lanes and outcome.
MAX_HOP_BYTES = 4096
#: Hops kept per flow: the link's own, then the latest refreshes (a link refreshes for months).
MAX_HOPS = 64
_LINK_HOPS = 9
#: Keys kept per flow: each refresh rotates the refresh token, and only the latest few lead anywhere.
MAX_KEYS = 8
#: What a key costs beside its hop (the key string in the flow and in the index).
_KEY_BYTES = 160
#: What a flow costs beside its hops (id, provider, the dataclass and list headers).
_FLOW_BYTES = 400


def redact(value: str) -> str:
    """A value as ``sha256:`` + 8 hex digits: enough to match two hops, nothing of the value itself."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:8]


def _shown(name: str, value: str) -> str:
    return value[:_MAX_VALUE] if name in _SHOWN else redact(value)


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    """At most ``_MAX_PARAMS`` parameters, names cut to ``_MAX_NAME``; the rest counted. Values as
    text: a typed JSON parameter (``expires_in: 1800``) as JSON spells it."""
    shown: dict[str, str] = {}
    for count, (name, value) in enumerate(params.items()):
        if count == _MAX_PARAMS:
            shown["…"] = f"{len(params) - _MAX_PARAMS} more parameters"
            break
        shown[name[:_MAX_NAME]] = _shown(name, value if isinstance(value, str) else json.dumps(value))
    return shown


def _query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = "&".join(f"{name[:_MAX_NAME]}={_shown(name, value)}" for name, value in pairs[:_MAX_PARAMS])
    return shown + (f"&…={len(pairs) - _MAX_PARAMS} more" if len(pairs) > _MAX_PARAMS else "")


def _url(url: str) -> str:
    """A URL with its query's and fragment's values redacted (``?state=sha256:…``, ``#access_token=sha256:…``):
    the upstream's own path is no secret. Query and fragment are read apart (RFC 3986 §3.4, §3.5), so a
    fragment is never read as part of the query's last value."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    shown = base[:_MAX_VALUE]
    if parts.query:
        shown += "?" + _query(parts.query)
    if parts.fragment:
        shown += "#" + _query(parts.fragment)
    return shown


def body_shape(content_type: str, body: bytes) -> Any:
    """The shape of an answer body: its fields with secrets hashed, or its size and kind."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        document = None
        if text and text[:1] not in "<[{":
            try:
                document = dict(parse_qsl(text, strict_parsing=True))
            except ValueError:
                pass
    if isinstance(document, dict):
        return _dict_shape(document)
    if document is not None:
        return f"JSON {type(document).__name__} ({len(body)} bytes)"
    return f"{len(body)} bytes" + (" of HTML" if text[:1] == "<" else "")


def _dict_shape(document: Mapping[Any, Any], depth: int = 0, budget: list[int] | None = None) -> dict[str, Any]:
    """At most ``_MAX_FIELDS`` fields in all (``budget`` is shared by the nested levels) and at most
    ``_MAX_DEPTH`` levels: an upstream's answer is the upstream's to shape, however deep."""
    budget = budget if budget is not None else [_MAX_FIELDS]
    shape: dict[str, Any] = {}
    for name, value in document.items():
        if budget[0] <= 0:
            shape["…"] = f"{len(document) - len(shape)} more fields"
            break
        budget[0] -= 1
        shape[str(name)[:_MAX_NAME]] = _value_shape(str(name), value, depth, budget)
    return shape


def _value_shape(name: str, value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    if isinstance(value, dict):
        if depth + 1 >= _MAX_DEPTH:
            return f"object of {len(value)} fields"
        return _dict_shape(value, depth + 1, budget)
    if isinstance(value, (bool, int, float)) or value is None:
        return value if name in _SHOWN or name in {"status", "expires_in"} else type(value).__name__
    if isinstance(value, list):
        return f"list of {len(value)}"
    return _shown(name, str(value))


@dataclass
class Hop:
    """One message between two lanes."""

    step: str
    src: str
    dst: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)
    ms: float | None = None
    ok: bool = True
    reason: str = ""
    google: str = ""
    mapping: str = ""


def hop_size(hop: Hop) -> int:
    """What ``hop`` weighs in the trace's budget: the length of its JSON (``vars``, not ``asdict``,
    which deep-copies: a hop's detail is plain JSON already, and this runs for every hop)."""
    return len(json.dumps(vars(hop), ensure_ascii=False))


#: The share each kind of flow may claim when the trace is full (:meth:`FlowTrace.evict`): flows
#: that reached the token endpoint (an authenticated platform), flows still in the browser, and
#: flows refused at their first step (anyone can send those).
TOKEN, BROWSER, REFUSED = "token", "browser", "refused"
KINDS = (TOKEN, BROWSER, REFUSED)


@dataclass
class Flow:
    """One link (authorize → … → token) and the refreshes of the tokens it gave."""

    id: str
    provider: str
    started: float
    hops: list[Hop] = field(default_factory=list)
    #: The hashed keys that lead here, oldest first, each once (a dict as an ordered set).
    keys: dict[str, None] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list, repr=False)
    size: int = _FLOW_BYTES
    kind: str = BROWSER

    @property
    def failure(self) -> Hop | None:
        """The last failed hop, if the flow's last attempt failed."""
        failed = [hop for hop in self.hops if not hop.ok]
        return failed[-1] if failed else None

    def summary(self) -> dict[str, Any]:
        failure = self.failure
        return {
            "id": self.id,
            "provider": self.provider,
            "started": self.started,
            "failed_step": failure.step if failure else None,
            "reason": failure.reason if failure else None,
        }

    def as_json(self) -> dict[str, Any]:
        return {**self.summary(), "hops": [dict(vars(hop)) for hop in self.hops]}


class FlowTrace:
    """The recent flows of this process, and the hashed keys that lead to each.

    Bounded twice: at most ``settings.flows`` flows, and at most ``settings.max_bytes`` bytes of
    their JSON (each hop is bounded on its own, :data:`MAX_HOP_BYTES`). When either is exceeded
    the oldest flow of the kind (:data:`KINDS`) holding the largest share goes first, so a flood of
    refused or abandoned requests evicts its own kind before any flow a platform completed."""

    def __init__(self, settings: TraceSettings) -> None:
        self.settings = settings
        self._flows: OrderedDict[str, Flow] = OrderedDict()
        self._kinds: dict[str, OrderedDict[str, Flow]] = {kind: OrderedDict() for kind in KINDS}
        self._bytes = dict.fromkeys(KINDS, 0)
        self._index: dict[str, str] = {}
        self._counter = 0

    @property
    def size(self) -> int:
        """The bytes the kept flows weigh together."""
        return sum(self._bytes.values())

    def flows(self) -> list[Flow]:
        """Newest first."""
        return list(reversed(self._flows.values()))

    def get(self, flow_id: str) -> Flow | None:
        return self._flows.get(flow_id)

    def find(self, kind: str, secret: str) -> Flow | None:
        flow_id = self._index.get(f"{kind}:{redact(secret)}")
        return self._flows.get(flow_id) if flow_id else None

    def link(self, flow: Flow, kind: str, secret: str) -> None:
        """Let a later hop that carries ``secret`` find ``flow`` (the latest ``MAX_KEYS`` keys do)."""
        if flow.id not in self._flows:
            return
        key = f"{kind}:{redact(secret)}"
        self._index[key] = flow.id
        if key in flow.keys:
            return
        flow.keys[key] = None
        self._grow(flow, _KEY_BYTES)
        while len(flow.keys) > MAX_KEYS:
            old = next(iter(flow.keys))
            del flow.keys[old]
            self._grow(flow, -_KEY_BYTES)
            if self._index.get(old) == flow.id:
                del self._index[old]

    def start(self, provider: str, kind: str = "", secret: str = "", *, fresh: bool = False) -> Flow:
        """The flow ``secret`` leads to, or a new one (evicting as :meth:`evict` says)."""
        flow = self.find(kind, secret) if secret and not fresh else None
        if flow is not None:
            self._flows.move_to_end(flow.id)
            self._kinds[flow.kind].move_to_end(flow.id)
            return flow
        self._counter += 1
        flow = Flow(id=f"{self._counter}-{redact(str(time.time_ns()))[7:]}", provider=provider, started=time.time())
        self._flows[flow.id] = flow
        self._kinds[flow.kind][flow.id] = flow
        self._bytes[flow.kind] += flow.size
        if secret:
            self.link(flow, kind, secret)
        self.evict(keep=flow)
        return flow

    def add(self, flow: Flow, hop: Hop) -> None:
        """Append ``hop`` to ``flow`` (keeping the link's hops and the latest), re-judge its kind, evict."""
        if flow.id not in self._flows:  # evicted while its request ran: the hop goes nowhere
            return
        size = hop_size(hop)
        if size > MAX_HOP_BYTES:
            hop.detail = {"…": f"detail left out: {size} bytes"}
            hop.reason = hop.reason[:_MAX_REASON]
            size = hop_size(hop)
        flow.hops.append(hop)
        flow.sizes.append(size)
        grown = size
        if len(flow.hops) > MAX_HOPS:
            del flow.hops[_LINK_HOPS]
            grown -= flow.sizes.pop(_LINK_HOPS)
        self._grow(flow, grown)
        kind = _kind_of(flow)
        if kind != flow.kind:
            del self._kinds[flow.kind][flow.id]
            self._bytes[flow.kind] -= flow.size
            flow.kind = kind
            self._kinds[kind][flow.id] = flow
            self._bytes[kind] += flow.size
        self.evict(keep=flow)

    def _grow(self, flow: Flow, by: int) -> None:
        flow.size += by
        self._bytes[flow.kind] += by

    def evict(self, keep: Flow | None = None) -> None:
        """Drop flows until both bounds hold: each time the oldest of the kind with the largest share
        (of the flow count or of the bytes, whichever is larger), never ``keep``."""
        limit_flows, limit_bytes = self.settings.flows, self.settings.max_bytes
        while len(self._flows) > limit_flows or self.size > limit_bytes:
            shares = {
                kind: max(len(flows) / limit_flows, self._bytes[kind] / limit_bytes)
                for kind, flows in self._kinds.items() if any(f is not keep for f in _oldest_two(flows))
            }
            if not shares:
                return
            kind = max(shares, key=lambda k: shares[k])
            old = next(f for f in _oldest_two(self._kinds[kind]) if f is not keep)
            self._drop(old)

    def _drop(self, flow: Flow) -> None:
        del self._flows[flow.id]
        del self._kinds[flow.kind][flow.id]
        self._bytes[flow.kind] -= flow.size
        for key in flow.keys:
            if self._index.get(key) == flow.id:
                del self._index[key]


def _oldest_two(flows: OrderedDict[str, Flow]) -> list[Flow]:
    """The two oldest flows of a kind: the oldest that is not the one being added to is among them."""
    found: list[Flow] = []
    for flow in flows.values():
        found.append(flow)
        if len(found) == 2:
            break
    return found


def _kind_of(flow: Flow) -> str:
    """Which share ``flow`` counts against (:data:`KINDS`)."""
    if any(hop.step in ("token", "refresh") and hop.src == PLATFORM and hop.ok for hop in flow.hops):
        return TOKEN
    if flow.hops and all(not hop.ok for hop in flow.hops):
        return REFUSED
    return BROWSER


TRACE = web.AppKey("trace", FlowTrace)
_CURRENT = web.RequestKey("trace_flow", Flow)
_STARTED = web.RequestKey("trace_started", float)


def _store(request: web.Request) -> FlowTrace | None:
    """The app's trace, if it has one. Each hook asks this first: an app without a trace has no
    flow on its requests either, and ``request.get`` of a missing key costs a ``KeyError``."""
    return request.app.get(TRACE)


def _current(request: web.Request, store: FlowTrace | None) -> Flow | None:
    """The flow this request belongs to; never looked up in an app without a trace (``store``)."""
    return request.get(_CURRENT) if store is not None else None


def _hop(store: FlowTrace, flow: Flow, step: str, src: str, dst: str, **fields: Any) -> Hop:
    hop = Hop(step=step, src=src, dst=dst, at=time.time(), **fields)
    hop.reason = hop.reason[:_MAX_REASON]
    store.add(flow, hop)
    return hop


# --- hooks the handlers call (each a no-op when tracing is off) -----------------------------------


def authorized(
    request: web.Request, provider: str, params: Mapping[str, str], *,
    nonce: str = "", location: str = "", error: OAuthError | None = None, mapping_step: str = "",
) -> None:
    """/authorize answered: the platform's request, and where the browser was sent."""
    store = _store(request)
    if store is None:
        return
    flow = store.start(provider, "nonce", nonce) if nonce else store.start(provider)
    reason = f"the gateway refused the platform's authorization request ({error.error}): {error.description}" if error else ""
    _hop(store, flow, "authorize", PLATFORM, GATEWAY, detail={"query": _params(params)}, ok=error is None, reason=reason)
    if location:
        _hop(store, flow, "upstream authorize", GATEWAY, UPSTREAM, detail={"redirect": _url(location)}, mapping=mapping_step)


def called_back(request: web.Request, mapping: ProviderMapping, params: Mapping[str, str], *, failure: str = "") -> None:
    """The upstream sent the browser back: what it sent, and why the gateway stops here, if it does."""
    store = _store(request)
    if store is None:
        return
    state = params.get("state", "")
    flow = store.start(mapping.name, "nonce", state) if state else store.start(mapping.name)
    request[_CURRENT] = flow
    upstream_error = params.get("error", "")
    ok = not failure and not upstream_error
    reason = reasons.callback_failure(failure or upstream_error) if not ok else ""
    if upstream_error and params.get("error_description"):
        reason += f": {params['error_description'][:200]}"
    _hop(store, flow, "callback", UPSTREAM, GATEWAY, detail={"query": _params(params)}, ok=ok, reason=reason)


def redirected(request: web.Request, response: web.Response, *, code: str = "") -> web.Response:
    """The gateway sent the browser back to the platform (with ``code``, a token, or an error)."""
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return response
    if code:
        store.link(flow, "code", code)
    location = response.headers.get("Location", "")
    _hop(store, flow, "platform redirect", GATEWAY, PLATFORM, detail={"redirect": _url(location)})
    return response


def token_refused(request: web.Request, mapping: ProviderMapping, form: Mapping[str, str]) -> None:
    """A token request whose client did not authenticate: one small hop of its own, never joined to
    a flow by the code or token it carries (anyone can send those) and holding none of its body."""
    store = _store(request)
    if store is None:
        return
    flow = store.start(mapping.name)
    grant = form.get("grant_type", "")[:_MAX_NAME]
    _hop(store, flow, "token", PLATFORM, GATEWAY, ok=False, detail={"grant_type": grant},
         reason="the platform client did not authenticate (invalid_client)")


def token_requested(request: web.Request, mapping: ProviderMapping, form: Mapping[str, str]) -> None:
    """The platform's token request, once its client has authenticated (before the grant is checked)."""
    store = _store(request)
    if store is None:
        return
    grant = form.get("grant_type", "")
    if grant == "authorization_code":
        flow = store.start(mapping.name, "code", form.get("code", ""))
    elif grant == "refresh_token":
        flow = store.start(mapping.name, "refresh", form.get("refresh_token", ""))
    else:
        flow = store.start(mapping.name)
    request[_CURRENT] = flow
    request[_STARTED] = time.monotonic()
    step = "refresh" if grant == "refresh_token" else "token"
    _hop(store, flow, step, PLATFORM, GATEWAY, detail={"form": _params(form)}, google=GOOGLE_STEPS.get(grant, ""))


def token_answered(request: web.Request, response: web.Response) -> None:
    """The gateway's token answer to the platform; a refresh token in it joins this flow."""
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    body = response.body if isinstance(response.body, bytes) else b""
    try:
        document = json.loads(body)
    except ValueError:
        document = {}
    ok = response.status == 200
    if ok and isinstance(document, dict) and isinstance(document.get("refresh_token"), str):
        store.link(flow, "refresh", document["refresh_token"])
    begun = max((i for i, hop in enumerate(flow.hops) if hop.step in ("token", "refresh")), default=0)
    failed_earlier = any(not hop.ok for hop in flow.hops[begun:])  # that hop is the one to name
    reason = ""
    if not ok and not failed_earlier and isinstance(document, dict):
        reason = f"the gateway refused the platform's token request ({document.get('error')}): {document.get('error_description', '')}"
    started = request.get(_STARTED)
    grant = flow.hops[-1].google if flow.hops else ""
    _hop(store, flow, "token answer", GATEWAY, PLATFORM, ok=ok or failed_earlier, reason=reason, google=grant,
         detail={"status": response.status, "body": body_shape("application/json", body)},
         ms=None if started is None else round((time.monotonic() - started) * 1000, 1))


def _flow_for_exchange(request: web.Request, mapping: ProviderMapping) -> Flow | None:
    store = _store(request)
    if store is None:
        return None
    flow = request.get(_CURRENT)
    if flow is None:
        flow = store.start(mapping.name)
        request[_CURRENT] = flow
    return flow


def upstream_requested(request: web.Request, mapping: ProviderMapping, prepared: PreparedRequest) -> None:
    """The gateway's token request to the upstream: method, URL, parameter names, redacted values."""
    store = _store(request)
    flow = _flow_for_exchange(request, mapping)
    if store is None or flow is None:
        return
    body = prepared.form if prepared.form is not None else prepared.json_body
    grant = (prepared.form or prepared.json_body or prepared.query or {}).get("grant_type", "")
    rules = mapping.token if grant == "authorization_code" else mapping.refresh
    detail: dict[str, Any] = {
        "method": prepared.method,
        "url": _url(prepared.url),
        "query": _params(prepared.query),
        "headers": _params(prepared.headers),
        "encoding": "json" if prepared.json_body is not None else ("form" if prepared.form is not None else "query"),
    }
    if body is not None:
        detail["body"] = _params(body)
    _hop(store, flow, "upstream token", GATEWAY, UPSTREAM, detail=detail, google=GOOGLE_STEPS.get(grant, ""),
         mapping=f"client_auth {rules.client_auth}, encoding {rules.encoding}, params verbs, headers verbs")


def upstream_failed(request: web.Request, kind: str, err: OAuthError, seconds: float | None) -> None:
    """No usable answer came back (timeout, connection, too large)."""
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    _hop(store, flow, "upstream answer", UPSTREAM, GATEWAY, ok=False, reason=reasons.upstream_failure(kind, err.description),
         ms=None if seconds is None else round(seconds * 1000, 1), detail={"failure": kind})


def upstream_answered(request: web.Request, answer: UpstreamAnswer, seconds: float | None) -> None:
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    _hop(store, flow, "upstream answer", UPSTREAM, GATEWAY, ms=None if seconds is None else round(seconds * 1000, 1),
         detail={"status": answer.status, "content_type": answer.content_type, "body": body_shape(answer.content_type, answer.body)})


def normalised(request: web.Request, mapping: ProviderMapping, result: Mapping[str, Any]) -> None:
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    _hop(store, flow, "normalise", GATEWAY, GATEWAY, detail={"answer": _dict_shape(result)},
         mapping=_answer_rules(mapping))


def normalise_failed(request: web.Request, mapping: ProviderMapping, answer: UpstreamAnswer, err: OAuthError, kind: str) -> None:
    """The answer came, but is an error or unusable: say why, format mismatches first."""
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    reason = ""
    if kind == "unusable_answer":
        reason = reasons.format_mismatch(answer.content_type, answer.body, mapping.answer.format) or ""
    if not reason:
        reason = reasons.upstream_failure(kind or err.error, err.description)
    _hop(store, flow, "normalise", GATEWAY, GATEWAY, ok=False, reason=reason, mapping=_answer_rules(mapping),
         detail={"error": err.error, "status": err.status})


def _answer_rules(mapping: ProviderMapping) -> str:
    rules = mapping.answer
    root = " root" if rules.root is not None else ""
    return f"answer: format {rules.format}{root}, fields, error rules"


# --- the pages -------------------------------------------------------------------------------------

#: Flows listed on ``/_trace/`` and given by one ``/_trace/flows.json``; JSON bytes per answer.
_LIST_FLOWS = 1000
_JSON_FLOWS = 100
_JSON_BYTES = 1024 * 1024
#: How long a page may hold the event loop before it lets other requests run.
_SLICE_SECONDS = 0.005


def _authorised(request: web.Request, token: str) -> bool:
    """The trace token as a bearer token or the login cookie, compared in constant time. Header and
    cookie bytes that are not UTF-8 reach here as surrogate escapes and are compared as the bytes sent."""
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(_raw(value.strip()), token.encode()):
        return True
    cookie = request.cookies.get(_COOKIE, "")
    return hmac.compare_digest(_raw(cookie), _cookie_value(token).encode())


def _raw(text: str) -> bytes:
    """The bytes a client sent: aiohttp decodes header bytes that are not UTF-8 as surrogate escapes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte: nothing anyone's token encodes to
        return b"\x00"


def _cookie_value(token: str) -> str:
    return hashlib.sha256(b"gateway trace cookie\x00" + token.encode()).hexdigest()


def _prefix(request: web.Request) -> str:
    """The path of ``public_url`` (``/gw`` for ``https://host/gw/``, else empty): the trace's own
    links, redirect and cookie path are where browsers see it, behind a proxy that strips it."""
    from gateway.web.appkeys import runtime_of  # not at the top: config.py imports this module, appkeys imports config

    return urlsplit(runtime_of(request).config.public_url).path.rstrip("/")


_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}


def _login_page(request: web.Request, wrong: bool, status: int = 401) -> web.Response:
    note = '<p class="bad">That is not the trace token.</p>' if wrong else ""
    action = _esc(f"{_prefix(request)}/_trace/login")
    body = f"""<h1>Flow trace</h1>{note}<p>This page needs the trace token (<code>trace.token</code> in gateway.yaml).
Scripts can send it as <code>Authorization: Bearer …</code>.</p>
<form method="post" action="{action}"><input type="password" name="token" autocomplete="off" aria-label="trace token">
<button type="submit">Open the trace</button></form>"""
    return web.Response(status=status, text=_document("Flow trace: sign in", body), content_type="text/html",
                        headers={**_HEADERS, "WWW-Authenticate": 'Bearer realm="gateway trace"'})


async def _login(request: web.Request) -> web.Response:
    store = request.app[TRACE]
    try:
        form = await request.post()
    except (ValueError, LookupError, AssertionError, RuntimeError, RequestPayloadError):
        # as gateway.demo.common.read_form: bytes not in the charset, an unknown charset, broken multipart
        return _login_page(request, wrong=True, status=400)
    given = form.get("token", "")
    if not isinstance(given, str) or not hmac.compare_digest(_raw(given), store.settings.token.encode()):
        return _login_page(request, wrong=True)
    prefix = _prefix(request)
    response = web.Response(status=303, headers={**_HEADERS, "Location": f"{prefix}/_trace/"})
    from gateway.web.appkeys import runtime_of  # not at the top: config.py imports this module, appkeys imports config

    secure = runtime_of(request).config.public_url.startswith("https://")
    response.set_cookie(_COOKIE, _cookie_value(store.settings.token), path=f"{prefix}/_trace/", httponly=True,
                        samesite="Strict", secure=secure, max_age=3600)
    return response


async def _page(request: web.Request) -> web.Response:
    """The list of flows, newest first, each a link to its own page: a line per flow, whatever they hold."""
    store = request.app[TRACE]
    if not _authorised(request, store.settings.token):
        return _login_page(request, wrong=False)
    prefix, flows = _prefix(request), store.flows()
    rows = []
    for flow in flows[:_LIST_FLOWS]:
        summary = flow.summary()
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(flow.started))
        verdict = (f'<span class="bad">failed at {_esc(summary["failed_step"])}: {_esc(summary["reason"])}</span>'
                   if summary["failed_step"] else '<span class="good">no step failed</span>')
        rows.append(f'<li><a href="{_esc(prefix)}/_trace/flow/{_esc(flow.id)}">{_esc(flow.provider)} · flow {_esc(flow.id)}</a>'
                    f" · {started} UTC · {len(flow.hops)} hops · {verdict}</li>")
    shown = min(len(flows), _LIST_FLOWS)
    body = (f"<h1>Flow trace</h1><p>The last {len(flows)} flows of this replica, newest first (at most "
            f"{store.settings.flows}, {store.size // 1024} of {store.settings.max_bytes // 1024} KiB)"
            + (f"; the newest {shown} are listed" if shown < len(flows) else "") + ".</p>")
    body += f'<ul class="flows">{"".join(rows)}</ul>' if rows else "<p>No flow yet.</p>"
    return web.Response(text=_document("Flow trace", body), content_type="text/html", headers=_HEADERS)


async def _flow_page(request: web.Request) -> web.Response:
    """One flow's sequence diagram (at most ``MAX_HOPS`` hops of at most ``MAX_HOP_BYTES``)."""
    store = request.app[TRACE]
    if not _authorised(request, store.settings.token):
        return _login_page(request, wrong=False)
    flow = store.get(request.match_info["flow"])
    if flow is None:
        body = f'<h1>Flow trace</h1><p>No such flow: it may have been dropped for newer ones. <a href="{_esc(_prefix(request))}/_trace/">All flows</a></p>'
        return web.Response(status=404, text=_document("Flow trace", body), content_type="text/html", headers=_HEADERS)
    body = f'<p><a href="{_esc(_prefix(request))}/_trace/">All flows</a></p>{render_flow(flow)}'
    return web.Response(text=_document(f"Flow {flow.id}", body), content_type="text/html", headers=_HEADERS)


async def _json(request: web.Request) -> web.Response:
    """The newest flows with their hops: at most ``?limit=`` (≤ ``_JSON_FLOWS``) and about
    ``_JSON_BYTES``; ``more`` counts those left out. Written a slice at a time, so a full buffer
    never holds the event loop for long."""
    store = request.app[TRACE]
    if not _authorised(request, store.settings.token):
        return web.json_response({"error": "invalid_token"}, status=401,
                                 headers={**_HEADERS, "WWW-Authenticate": 'Bearer realm="gateway trace"'})
    limit = request.query.get("limit", "")
    count = min(int(limit), _JSON_FLOWS) if limit.isdecimal() and limit.isascii() else _JSON_FLOWS
    flows = store.flows()
    parts: list[str] = []
    size, began = 0, time.monotonic()
    for flow in flows[:count]:
        if size >= _JSON_BYTES:
            break
        part = json.dumps(flow.as_json(), ensure_ascii=False)
        parts.append(part)
        size += len(part)
        if time.monotonic() - began > _SLICE_SECONDS:
            await asyncio.sleep(0)
            began = time.monotonic()
    text = '{"flows": [' + ", ".join(parts) + f'], "more": {len(flows) - len(parts)}}}'
    return web.Response(text=text, content_type="application/json", headers=_HEADERS)


def add_routes(app: web.Application, settings: TraceSettings) -> None:
    app[TRACE] = FlowTrace(settings)
    app.router.add_get("/_trace/", _page)
    app.router.add_post("/_trace/login", _login)
    app.router.add_get("/_trace/flows.json", _json)
    app.router.add_get("/_trace/flow/{flow}", _flow_page)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _detail(detail: Mapping[str, Any]) -> str:
    return _esc(json.dumps(detail, ensure_ascii=False, indent=1)) if detail else ""


def render_flow(flow: Flow) -> str:
    """One flow as a sequence diagram: a CSS grid of three lanes, one row per hop, no script."""
    failure = flow.failure
    verdict = (f'<p class="bad">Failed at <strong>{_esc(failure.step)}</strong>: {_esc(failure.reason)}</p>'
               if failure else '<p class="good">No step failed.</p>')
    rows = []
    for hop in flow.hops:
        a, b = LANES.index(hop.src), LANES.index(hop.dst)
        left, right = min(a, b), max(a, b)
        arrow = "self" if a == b else ("right" if b > a else "left")
        tags = " ".join(f'<span class="tag">{_esc(t)}</span>' for t in (hop.google,) if t)
        timing = f" · {hop.ms:g} ms" if hop.ms is not None else ""
        if isinstance(hop.detail.get("status"), int):
            timing = f" · HTTP {hop.detail['status']}{timing}"
        reason = f'<div class="why">{_esc(hop.reason)}</div>' if hop.reason else ""
        mapping = f'<div class="map">mapping: {_esc(hop.mapping)}</div>' if hop.mapping else ""
        rows.append(
            f'<div class="hop {arrow}{"" if hop.ok else " failed"}" style="grid-column:{left + 1}/{right + 2}">'
            f'<div class="label"><strong>{_esc(hop.step)}</strong> {tags}<small>{_esc(hop.src)} → {_esc(hop.dst)}{timing}</small></div>'
            f'<div class="line"></div>{reason}{mapping}'
            f'<details><summary>detail</summary><pre>{_detail(hop.detail)}</pre></details></div>'
        )
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(flow.started))
    lanes = "".join(f'<div class="lane">{lane}</div>' for lane in LANES)
    return (f'<section class="flow" id="flow-{_esc(flow.id)}"><h2>{_esc(flow.provider)} · flow {_esc(flow.id)} · {started} UTC</h2>'
            f'{verdict}<div class="diagram">{lanes}{"".join(rows)}</div></section>')


STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
.flow{border:1px solid #ccc;border-radius:6px;padding:0 1em 1em;margin:1em 0}
.diagram{display:grid;grid-template-columns:1fr 1fr 1fr;row-gap:.4em;position:relative;
 background:linear-gradient(90deg,transparent calc(16.66% - 1px),#bbb calc(16.66% - 1px),#bbb 16.66%,transparent 16.66%,
 transparent calc(50% - 1px),#bbb calc(50% - 1px),#bbb 50%,transparent 50%,transparent calc(83.33% - 1px),#bbb calc(83.33% - 1px),#bbb 83.33%,transparent 83.33%)}
.lane{text-align:center;font-weight:bold;background:#eef;border:1px solid #99c;padding:.3em;margin:0 .5em}
.hop{position:relative;padding:0 calc(16.66% / 1) 0;margin:0;text-align:center}
.hop .label{background:rgba(255,255,255,.9);display:inline-block;padding:0 .4em}
.hop .label small{display:block;color:#666}
.hop .line{height:0;border-top:2px solid #36c;margin:.1em 16.5%;position:relative}
.hop.right .line::after{content:"▶";position:absolute;right:-.4em;top:-.8em;color:#36c}
.hop.left .line::before{content:"◀";position:absolute;left:-.4em;top:-.8em;color:#36c}
.hop.self .line{border-top:2px dashed #36c;margin:.1em 30%}
.hop.failed .line{border-color:#c00}.hop.failed .line::after,.hop.failed .line::before{color:#c00}
.why{color:#a00;font-weight:bold;background:#fee;display:inline-block;padding:.1em .4em}
.map{color:#555;font-size:12px}.tag{background:#ffd;border:1px solid #cc9;font-size:11px;padding:0 .3em}
details{text-align:left;margin:0 10%}pre{white-space:pre-wrap;font-size:12px;background:#f6f6f6;padding:.4em}
.bad{color:#a00}.good{color:#070}"""


def _document(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>")
