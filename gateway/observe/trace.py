"""The flow trace: what happened to the last N account links, hop by hop, with every secret redacted.

All an integrator sees of a failed link is "We were unable to link … at this time" (Alexa) or
"Bad response from IdP" (Google). With ``trace: {token: …, flows: 200}`` in gateway.yaml each
replica keeps its last ``flows`` flows in memory (a bounded ``OrderedDict``; nothing is written
anywhere) and serves them at ``/_trace/`` (a server-rendered sequence diagram, lanes platform |
gateway | upstream, no script) and ``/_trace/flows.json``.

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

import hashlib
import hmac
import html
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

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

MIN_TOKEN_LENGTH = 32
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


@dataclass(frozen=True)
class TraceSettings:
    """``trace:`` in gateway.yaml: the bearer token for ``/_trace/`` and how many flows to keep."""

    token: str
    flows: int = 200
    #: Made up for the demo (not from the file): a reload keeps the running one.
    generated: bool = False


def redact(value: str) -> str:
    """A value as ``sha256:`` + 8 hex digits: enough to match two hops, nothing of the value itself."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:8]


def _shown(name: str, value: str) -> str:
    return value[:200] if name in _SHOWN else redact(value)


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    """Values as text: a typed JSON parameter (``expires_in: 1800``) as JSON spells it."""
    return {name: _shown(name, value if isinstance(value, str) else json.dumps(value)) for name, value in params.items()}


def _url(url: str) -> str:
    """A URL without its query's values (``?state=sha256:…``): the upstream's own path is no secret."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    if not parts.query:
        return base
    query = "&".join(f"{name}={_shown(name, value)}" for name, value in parse_qsl(parts.query, keep_blank_values=True))
    return f"{base}?{query}"


def body_shape(content_type: str, body: bytes) -> Any:
    """The shape of an answer body: its fields with secrets hashed, or its size and kind."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        document = None
        if text and text[:1] != "<":
            try:
                document = dict(parse_qsl(text, strict_parsing=True))
            except ValueError:
                pass
    if isinstance(document, dict):
        return _dict_shape(document)
    if document is not None:
        return f"JSON {type(document).__name__} ({len(body)} bytes)"
    return f"{len(body)} bytes" + (" of HTML" if text[:1] == "<" else "")


def _dict_shape(document: Mapping[Any, Any]) -> dict[str, Any]:
    shape = {str(k): _value_shape(str(k), v) for k, v in list(document.items())[:_MAX_FIELDS]}
    if len(document) > _MAX_FIELDS:
        shape["…"] = f"{len(document) - _MAX_FIELDS} more fields"
    return shape


def _value_shape(name: str, value: Any) -> Any:
    if isinstance(value, dict):
        return _dict_shape(value)
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


@dataclass
class Flow:
    """One link (authorize → … → token) and the refreshes of the tokens it gave."""

    id: str
    provider: str
    started: float
    hops: list[Hop] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @property
    def failure(self) -> Hop | None:
        """The last failed hop, if the flow's last attempt failed."""
        failed = [hop for hop in self.hops if not hop.ok]
        return failed[-1] if failed else None

    def as_json(self) -> dict[str, Any]:
        failure = self.failure
        return {
            "id": self.id,
            "provider": self.provider,
            "started": self.started,
            "failed_step": failure.step if failure else None,
            "reason": failure.reason if failure else None,
            "hops": [asdict(hop) for hop in self.hops],
        }


class FlowTrace:
    """The last ``size`` flows of this process, and the hashed keys that lead to each."""

    def __init__(self, settings: TraceSettings) -> None:
        self.settings = settings
        self._flows: OrderedDict[str, Flow] = OrderedDict()
        self._index: dict[str, str] = {}
        self._counter = 0

    def flows(self) -> list[Flow]:
        """Newest first."""
        return list(reversed(self._flows.values()))

    def find(self, kind: str, secret: str) -> Flow | None:
        flow_id = self._index.get(f"{kind}:{redact(secret)}")
        return self._flows.get(flow_id) if flow_id else None

    def link(self, flow: Flow, kind: str, secret: str) -> None:
        """Let a later hop that carries ``secret`` find ``flow``."""
        key = f"{kind}:{redact(secret)}"
        self._index[key] = flow.id
        flow.keys.append(key)

    def start(self, provider: str, kind: str = "", secret: str = "") -> Flow:
        """The flow ``secret`` leads to, or a new one (evicting the oldest beyond ``size``)."""
        flow = self.find(kind, secret) if secret else None
        if flow is not None:
            self._flows.move_to_end(flow.id)
            return flow
        self._counter += 1
        flow = Flow(id=f"{self._counter}-{redact(str(time.time_ns()))[7:]}", provider=provider, started=time.time())
        self._flows[flow.id] = flow
        while len(self._flows) > self.settings.flows:
            _, old = self._flows.popitem(last=False)
            for key in old.keys:
                if self._index.get(key) == old.id:
                    del self._index[key]
        if secret:
            self.link(flow, kind, secret)
        return flow


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


#: Hops kept per flow: the link's own, then the latest refreshes (a link refreshes for months).
MAX_HOPS = 64
_LINK_HOPS = 9
#: Fields of an answer body shown in its shape; the rest is counted.
_MAX_FIELDS = 40


def _hop(request: web.Request, flow: Flow, step: str, src: str, dst: str, **fields: Any) -> Hop:
    hop = Hop(step=step, src=src, dst=dst, at=time.time(), **fields)
    flow.hops.append(hop)
    if len(flow.hops) > MAX_HOPS:
        del flow.hops[_LINK_HOPS]
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
    _hop(request, flow, "authorize", PLATFORM, GATEWAY, detail={"query": _params(params)}, ok=error is None, reason=reason)
    if location:
        _hop(request, flow, "upstream authorize", GATEWAY, UPSTREAM, detail={"redirect": _url(location)}, mapping=mapping_step)


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
    _hop(request, flow, "callback", UPSTREAM, GATEWAY, detail={"query": _params(params)}, ok=ok, reason=reason)


def redirected(request: web.Request, response: web.Response, *, code: str = "") -> web.Response:
    """The gateway sent the browser back to the platform (with ``code``, a token, or an error)."""
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return response
    if code:
        store.link(flow, "code", code)
    location = response.headers.get("Location", "")
    _hop(request, flow, "platform redirect", GATEWAY, PLATFORM, detail={"redirect": _url(location.replace("#", "?", 1))})
    return response


def token_requested(request: web.Request, mapping: ProviderMapping, form: Mapping[str, str]) -> None:
    """The platform's token request (before it is checked)."""
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
    _hop(request, flow, step, PLATFORM, GATEWAY, detail={"form": _params(form)}, google=GOOGLE_STEPS.get(grant, ""))


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
    _hop(request, flow, "token answer", GATEWAY, PLATFORM, ok=ok or failed_earlier, reason=reason, google=grant,
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
    flow = _flow_for_exchange(request, mapping)
    if flow is None:
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
    _hop(request, flow, "upstream token", GATEWAY, UPSTREAM, detail=detail, google=GOOGLE_STEPS.get(grant, ""),
         mapping=f"client_auth {rules.client_auth}, encoding {rules.encoding}, params verbs, headers verbs")


def upstream_failed(request: web.Request, kind: str, err: OAuthError, seconds: float | None) -> None:
    """No usable answer came back (timeout, connection, too large)."""
    flow = _current(request, _store(request))
    if flow is None:
        return
    _hop(request, flow, "upstream answer", UPSTREAM, GATEWAY, ok=False, reason=reasons.upstream_failure(kind, err.description),
         ms=None if seconds is None else round(seconds * 1000, 1), detail={"failure": kind})


def upstream_answered(request: web.Request, answer: UpstreamAnswer, seconds: float | None) -> None:
    flow = _current(request, _store(request))
    if flow is None:
        return
    _hop(request, flow, "upstream answer", UPSTREAM, GATEWAY, ms=None if seconds is None else round(seconds * 1000, 1),
         detail={"status": answer.status, "content_type": answer.content_type, "body": body_shape(answer.content_type, answer.body)})


def normalised(request: web.Request, mapping: ProviderMapping, result: Mapping[str, Any]) -> None:
    flow = _current(request, _store(request))
    if flow is None:
        return
    _hop(request, flow, "normalise", GATEWAY, GATEWAY, detail={"answer": {k: _value_shape(k, v) for k, v in result.items()}},
         mapping=_answer_rules(mapping))


def normalise_failed(request: web.Request, mapping: ProviderMapping, answer: UpstreamAnswer, err: OAuthError, kind: str) -> None:
    """The answer came, but is an error or unusable: say why, format mismatches first."""
    flow = _current(request, _store(request))
    if flow is None:
        return
    reason = ""
    if kind == "unusable_answer":
        reason = reasons.format_mismatch(answer.content_type, answer.body, mapping.answer.format) or ""
    if not reason:
        reason = reasons.upstream_failure(kind or err.error, err.description)
    _hop(request, flow, "normalise", GATEWAY, GATEWAY, ok=False, reason=reason, mapping=_answer_rules(mapping),
         detail={"error": err.error, "status": err.status})


def _answer_rules(mapping: ProviderMapping) -> str:
    rules = mapping.answer
    root = " root" if rules.root is not None else ""
    return f"answer: format {rules.format}{root}, fields, error rules"


# --- the pages -------------------------------------------------------------------------------------


def _authorised(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(_COOKIE, "")
    return hmac.compare_digest(cookie.encode("utf-8", "replace"), _cookie_value(token).encode())


def _cookie_value(token: str) -> str:
    return hashlib.sha256(b"gateway trace cookie\x00" + token.encode()).hexdigest()


_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}


def _login_page(wrong: bool) -> web.Response:
    note = '<p class="bad">That is not the trace token.</p>' if wrong else ""
    body = f"""<h1>Flow trace</h1>{note}<p>This page needs the trace token (<code>trace.token</code> in gateway.yaml).
Scripts can send it as <code>Authorization: Bearer …</code>.</p>
<form method="post" action="/_trace/login"><input type="password" name="token" autocomplete="off" aria-label="trace token">
<button type="submit">Open the trace</button></form>"""
    return web.Response(status=401, text=_document("Flow trace: sign in", body), content_type="text/html",
                        headers={**_HEADERS, "WWW-Authenticate": 'Bearer realm="gateway trace"'})


async def _login(request: web.Request) -> web.Response:
    store = request.app[TRACE]
    form = await request.post()
    given = str(form.get("token", ""))
    if not hmac.compare_digest(given.encode("utf-8", "replace"), store.settings.token.encode()):
        return _login_page(wrong=True)
    response = web.Response(status=303, headers={**_HEADERS, "Location": "/_trace/"})
    from gateway.web.appkeys import runtime_of  # not at the top: config.py imports this module, appkeys imports config

    secure = runtime_of(request).config.public_url.startswith("https://")
    response.set_cookie(_COOKIE, _cookie_value(store.settings.token), path="/_trace/", httponly=True,
                        samesite="Strict", secure=secure, max_age=3600)
    return response


async def _page(request: web.Request) -> web.Response:
    store = request.app[TRACE]
    if not _authorised(request, store.settings.token):
        return _login_page(wrong=False)
    flows = store.flows()
    body = f"<h1>Flow trace</h1><p>The last {len(flows)} flows of this replica, newest first (at most {store.settings.flows}).</p>"
    body += "".join(render_flow(flow) for flow in flows) or "<p>No flow yet.</p>"
    return web.Response(text=_document("Flow trace", body), content_type="text/html", headers=_HEADERS)


async def _json(request: web.Request) -> web.Response:
    store = request.app[TRACE]
    if not _authorised(request, store.settings.token):
        return web.json_response({"error": "invalid_token"}, status=401,
                                 headers={**_HEADERS, "WWW-Authenticate": 'Bearer realm="gateway trace"'})
    return web.json_response({"flows": [flow.as_json() for flow in store.flows()]}, headers=_HEADERS)


def add_routes(app: web.Application, settings: TraceSettings) -> None:
    app[TRACE] = FlowTrace(settings)
    app.router.add_get("/_trace/", _page)
    app.router.add_post("/_trace/login", _login)
    app.router.add_get("/_trace/flows.json", _json)


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
