"""The flow trace's hooks: the handlers' frames call these at fixed points of a request.

Each is a no-op when tracing is off (the app has no :data:`~gateway.observe.trace.model.TRACE`),
and costs one ``app.get`` then. Hops are correlated into one flow by the secrets that link them,
each known only by its hash: the flow nonce (the upstream ``state``), the sealed code the platform
gets, and each refresh token the platform was given. Each failed flow names the step that failed
and why, in :mod:`gateway.observe.reasons`' words (those of ``gateway linktest``); token steps
carry Google's account-linking step names (``AUTH_CODE_EXCHANGE``, ``REFRESH_ACCESS_TOKEN``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.observe import reasons
from gateway.observe.trace.model import GATEWAY, GOOGLE_STEPS, MAX_REASON, PLATFORM, TRACE, UPSTREAM, Flow, FlowTrace, Hop
from gateway.observe.trace.redact import MAX_NAME, body_shape, dict_shape, shown_params, shown_url

if TYPE_CHECKING:  # only for annotations: the hooks are called with these, never build them
    from gateway.config.mapping import ProviderMapping
    from gateway.oauth.responses import OAuthError
    from gateway.upstream.answer import UpstreamAnswer
    from gateway.upstream.client import PreparedRequest

__all__ = [
    "authorized", "called_back", "redirected", "token_refused", "token_requested", "token_answered",
    "upstream_requested", "upstream_failed", "upstream_answered", "normalised", "normalise_failed", "add_hop",
]

_CURRENT = web.RequestKey("trace_flow", Flow)
_STARTED = web.RequestKey("trace_started", float)


def _store(request: web.Request) -> FlowTrace | None:
    """The app's trace, if it has one. Each hook asks this first: an app without a trace has no
    flow on its requests either, and ``request.get`` of a missing key costs a ``KeyError``. In a
    process that never made a trace (tracing is off by default) not even the app is asked: each
    lookup through ``request.app`` costs four Python calls, five times a request."""
    return request.app.get(TRACE) if FlowTrace.made else None


def _current(request: web.Request, store: FlowTrace | None) -> Flow | None:
    """The flow this request belongs to; never looked up in an app without a trace (``store``)."""
    return request.get(_CURRENT) if store is not None else None


def add_hop(store: FlowTrace, flow: Flow, step: str, src: str, dst: str, **fields: Any) -> Hop:
    hop = Hop(step=step, src=src, dst=dst, at=time.time(), **fields)
    hop.reason = hop.reason[:MAX_REASON]
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
    add_hop(store, flow, "authorize", PLATFORM, GATEWAY, detail={"query": shown_params(params)}, ok=error is None, reason=reason)
    if location:
        add_hop(store, flow, "upstream authorize", GATEWAY, UPSTREAM, detail={"redirect": shown_url(location)}, mapping=mapping_step)


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
    add_hop(store, flow, "callback", UPSTREAM, GATEWAY, detail={"query": shown_params(params)}, ok=ok, reason=reason)


def redirected(request: web.Request, location: str, *, code: str = "", stopped: str = "") -> None:
    """The gateway sent the browser back to the platform (with ``code``, a token, or an error);
    ``stopped``: why the gateway itself stopped a link whose callback came back fine
    (:func:`gateway.observe.reasons.gateway_stopped_callback`), which makes this the failed step."""
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    if code:
        store.link(flow, "code", code)
    reason = reasons.gateway_stopped_callback(stopped) if stopped else ""
    add_hop(store, flow, "platform redirect", GATEWAY, PLATFORM, detail={"redirect": shown_url(location)}, ok=not stopped, reason=reason)


def token_refused(request: web.Request, mapping: ProviderMapping, form: Mapping[str, str]) -> None:
    """A token request whose client did not authenticate: one small hop of its own, never joined to
    a flow by the code or token it carries (anyone can send those) and holding none of its body."""
    store = _store(request)
    if store is None:
        return
    flow = store.start(mapping.name)
    grant = form.get("grant_type", "")[:MAX_NAME]
    add_hop(store, flow, "token", PLATFORM, GATEWAY, ok=False, detail={"grant_type": grant},
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
    add_hop(store, flow, step, PLATFORM, GATEWAY, detail={"form": shown_params(form)}, google=GOOGLE_STEPS.get(grant, ""))


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
    add_hop(store, flow, "token answer", GATEWAY, PLATFORM, ok=ok or failed_earlier, reason=reason, google=grant,
         detail={"status": response.status, "body": body_shape("application/json", body)},
         ms=None if started is None else round((time.monotonic() - started) * 1000, 1))


def _flow_for_exchange(request: web.Request, store: FlowTrace, mapping: ProviderMapping) -> Flow:
    flow = request.get(_CURRENT)
    if flow is None:
        flow = store.start(mapping.name)
        request[_CURRENT] = flow
    return flow


def upstream_requested(request: web.Request, mapping: ProviderMapping, prepared: PreparedRequest) -> None:
    """The gateway's token request to the upstream: method, URL, parameter names, redacted values."""
    store = _store(request)
    if store is None:
        return
    flow = _flow_for_exchange(request, store, mapping)
    body = prepared.form if prepared.form is not None else prepared.json_body
    grant = (prepared.form or prepared.json_body or prepared.query or {}).get("grant_type", "")
    rules = mapping.token if grant == "authorization_code" else mapping.refresh
    detail: dict[str, Any] = {
        "method": prepared.method,
        "url": shown_url(prepared.url),
        "query": shown_params(prepared.query),
        "headers": shown_params(prepared.headers),
        "encoding": "json" if prepared.json_body is not None else ("form" if prepared.form is not None else "query"),
    }
    if body is not None:
        detail["body"] = shown_params(body)
    add_hop(store, flow, "upstream token", GATEWAY, UPSTREAM, detail=detail, google=GOOGLE_STEPS.get(grant, ""),
         mapping=f"client_auth {rules.client_auth}, encoding {rules.encoding}, params verbs, headers verbs")


def upstream_failed(request: web.Request, kind: str, err: OAuthError, seconds: float | None) -> None:
    """No usable answer came back (timeout, connection, too large)."""
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    add_hop(store, flow, "upstream answer", UPSTREAM, GATEWAY, ok=False, reason=reasons.upstream_failure(kind, err.description),
         ms=None if seconds is None else round(seconds * 1000, 1), detail={"failure": kind})


def upstream_answered(request: web.Request, answer: UpstreamAnswer, seconds: float | None) -> None:
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    add_hop(store, flow, "upstream answer", UPSTREAM, GATEWAY, ms=None if seconds is None else round(seconds * 1000, 1),
         detail={"status": answer.status, "content_type": answer.content_type, "body": body_shape(answer.content_type, answer.body)})


def normalised(request: web.Request, mapping: ProviderMapping, result: Mapping[str, Any]) -> None:
    store = _store(request)
    flow = _current(request, store)
    if store is None or flow is None:
        return
    add_hop(store, flow, "normalise", GATEWAY, GATEWAY, detail={"answer": dict_shape(result)},
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
    add_hop(store, flow, "normalise", GATEWAY, GATEWAY, ok=False, reason=reason, mapping=_answer_rules(mapping),
         detail={"error": err.error, "status": err.status})


def _answer_rules(mapping: ProviderMapping) -> str:
    rules = mapping.answer
    root = " root" if rules.root is not None else ""
    return f"answer: format {rules.format}{root}, fields, error rules"

