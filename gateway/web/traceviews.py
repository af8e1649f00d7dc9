"""The flow trace's HTTP views: ``/_trace/`` (a list of flows), ``/_trace/flow/<id>`` (one flow as a
sequence diagram), ``/_trace/flows.json`` and the login form.

They live in the web layer, not in :mod:`gateway.observe.trace`, because they are HTTP handlers
that read the running config (the public URL's path, for links and the cookie) as every other
handler does; the trace itself knows nothing of the web layer.

Access: ``Authorization: Bearer <token>``, or, for the HTML page in a browser, a login form that
sets an HttpOnly, SameSite=Strict cookie holding a hash of the token (never a ``?token=`` query:
URLs end up in access logs and browser history). Both are compared in constant time; anything
else is 401. With tracing off the routes do not exist (404). The pages render one flow at a time,
and the JSON a bounded slice, so none holds the event loop long.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from gateway.config.settings import TraceSettings
from gateway.observe.trace.model import TRACE, FlowTrace
from gateway.observe.trace.render import document, esc, render_flow
from gateway.web.appkeys import runtime_of

__all__ = ["add_routes"]

_COOKIE = "gateway_trace"

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

    return urlsplit(runtime_of(request).config.public_url).path.rstrip("/")


_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}


def _login_page(request: web.Request, wrong: bool, status: int = 401) -> web.Response:
    note = '<p class="bad">That is not the trace token.</p>' if wrong else ""
    action = esc(f"{_prefix(request)}/_trace/login")
    body = f"""<h1>Flow trace</h1>{note}<p>This page needs the trace token (<code>trace.token</code> in gateway.yaml).
Scripts can send it as <code>Authorization: Bearer …</code>.</p>
<form method="post" action="{action}"><input type="password" name="token" autocomplete="off" aria-label="trace token">
<button type="submit">Open the trace</button></form>"""
    return web.Response(status=status, text=document("Flow trace: sign in", body), content_type="text/html",
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
        verdict = (f'<span class="bad">failed at {esc(summary["failed_step"])}: {esc(summary["reason"])}</span>'
                   if summary["failed_step"] else '<span class="good">no step failed</span>')
        rows.append(f'<li><a href="{esc(prefix)}/_trace/flow/{esc(flow.id)}">{esc(flow.provider)} · flow {esc(flow.id)}</a>'
                    f" · {started} UTC · {len(flow.hops)} hops · {verdict}</li>")
    shown = min(len(flows), _LIST_FLOWS)
    body = (f"<h1>Flow trace</h1><p>The last {len(flows)} flows of this replica, newest first (at most "
            f"{store.settings.flows}, {store.size // 1024} of {store.settings.max_bytes // 1024} KiB)"
            + (f"; the newest {shown} are listed" if shown < len(flows) else "") + ".</p>")
    body += f'<ul class="flows">{"".join(rows)}</ul>' if rows else "<p>No flow yet.</p>"
    return web.Response(text=document("Flow trace", body), content_type="text/html", headers=_HEADERS)


async def _flow_page(request: web.Request) -> web.Response:
    """One flow's sequence diagram (at most ``MAX_HOPS`` hops of at most ``MAX_HOP_BYTES``)."""
    store = request.app[TRACE]
    if not _authorised(request, store.settings.token):
        return _login_page(request, wrong=False)
    flow = store.get(request.match_info["flow"])
    if flow is None:
        body = f'<h1>Flow trace</h1><p>No such flow: it may have been dropped for newer ones. <a href="{esc(_prefix(request))}/_trace/">All flows</a></p>'
        return web.Response(status=404, text=document("Flow trace", body), content_type="text/html", headers=_HEADERS)
    body = f'<p><a href="{esc(_prefix(request))}/_trace/">All flows</a></p>{render_flow(flow)}'
    return web.Response(text=document(f"Flow {flow.id}", body), content_type="text/html", headers=_HEADERS)


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

