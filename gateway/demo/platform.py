"""DEMO ONLY: a page that plays the platform (Alexa, Google Home) against the gateway.

It does what a platform does during account linking, and shows each step:

1. send the browser to the gateway's ``/demo/authorize`` with a random ``state`` that it also
   keeps in a short-lived cookie (RFC 6749 §10.12, CSRF);
2. at its redirect URI, check ``state`` against that cookie and exchange the code server-to-server
   at the gateway's ``/demo/token`` with HTTP Basic client authentication;
3. call the upstream's userinfo with the access token, and refresh the token on request.

It keeps no server memory: the refresh token travels to the next request in a sealed hidden form
field (never in a URL), so any replica can serve the next click.

Routes: ``GET /`` and ``GET /_demo`` (redirect), ``GET /_demo/``, ``GET /_demo/platform/``,
``GET /_demo/platform/start``, ``GET /_demo/platform/callback``, ``POST /_demo/platform/refresh``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from gateway.demo.common import DEMO_HTTP, DEMO_SETTINGS, DemoSettings, open_field, read_form, redirect
from gateway.demo.pages import esc, hidden, message_page, page
from gateway.oauth.basicauth import basic_auth_header
from gateway.observe.trace.model import TRACE
from gateway.observe.trace.render import STYLE as TRACE_STYLE
from gateway.observe.trace.render import render_flow

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "STATE_COOKIE", "add_routes", "shorten"]

CLIENT_ID = "demo-platform"
CLIENT_SECRET = "demo-platform-secret"
SCOPE = "profile email"

STATE_COOKIE = "demo_platform_state"
STATE_COOKIE_PATH = "/_demo/platform/"
STATE_TTL = 600
REFRESH_FIELD_TTL = 30 * 24 * 3600  # as long as the demo upstream's refresh tokens live

#: Fields of a token answer that are secrets: the page shows only their first characters.
SECRET_FIELDS = frozenset({"access_token", "refresh_token", "id_token"})
_SHOWN_CHARS = 8
#: A token answer or userinfo answer is small; read no more than this of it.
_MAX_ANSWER = 64 * 1024


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the demo platform's pages, and ``/`` so a newcomer lands on the demo."""
    router.add_get("/", to_landing)
    router.add_get("/_demo", to_landing)
    router.add_get("/_demo/", landing)
    router.add_get("/_demo/platform/", landing)
    router.add_get("/_demo/platform/start", start)
    router.add_get("/_demo/platform/callback", callback)
    router.add_post("/_demo/platform/refresh", refresh)


async def to_landing(request: web.Request) -> web.Response:
    return redirect("/_demo/", carries_secret=False)


async def landing(request: web.Request) -> web.Response:
    """Explain the three hops, and offer the one button that starts them."""
    settings = request.app[DEMO_SETTINGS]
    public = settings.public_url
    body = f"""<p><strong>This is a DEMO of gateway.</strong> This page plays the <em>platform</em> (like
Alexa): it wants to link your account at <em>Demo Upstream</em>, an authorization server that speaks
an odd dialect. The gateway translates between the two, as the mapping
<code>gateway/demo/demo.yaml</code> declares.</p>
<p><a class="button primary" href="{esc(public)}/_demo/platform/start">Link account</a></p>
<h2>What happens</h2>
<ol>
<li><strong>Platform → gateway.</strong> This page sends your browser to the gateway's
<code>{esc(public)}/demo/authorize</code> with <code>client_id=demo-platform</code> and a random
<code>state</code>, as Alexa would.</li>
<li><strong>Gateway → upstream → gateway.</strong> The gateway redirects you to Demo Upstream's
<code>/_demo/oauth/authorize</code>, renaming <code>client_id</code> to <code>app_id</code>. You sign
in (any name) and allow access; the upstream sends you back to <code>{esc(public)}/demo/callback</code>,
and the gateway hands this page a sealed code.</li>
<li><strong>Platform → gateway → upstream.</strong> This page POSTs the code to the gateway's
<code>{esc(public)}/demo/token</code>. The gateway forwards it in the upstream's dialect
(<code>action=requesttoken</code>, credentials in the body) and turns the nested answer
<code>{{"status": 0, "body": {{…}}}}</code> into a standard OAuth2 token answer.</li>
</ol>
<p>Then the page calls the upstream's userinfo with the access token, and lets you refresh it.</p>
<h2>Docs</h2>
<p>How the gateway works, its configuration and how to write a mapping for your own provider:
see <code>README.md</code> in the gateway's repository, and <code>mappings/schema.json</code> for
the mapping vocabulary.</p>"""
    return page("platform", "Link your account (demo)", body)


async def start(request: web.Request) -> web.Response:
    """Step 1: remember a random state in a cookie, send the browser to the gateway's /authorize."""
    settings = request.app[DEMO_SETTINGS]
    state = secrets.token_urlsafe(24)
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": settings.platform_callback,
        "state": state,
        "scope": SCOPE,
    }
    response = redirect(f"{settings.public_url}/demo/authorize?{urlencode(params, quote_via=quote)}")
    # Not Secure: the demo runs on http://localhost. SameSite=Lax still travels on the top-level
    # GET redirect back from the gateway.
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=STATE_TTL,
        path=STATE_COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=False,
    )
    return response


async def callback(request: web.Request) -> web.Response:
    """Step 2: check state, then exchange the code at the gateway; the state cookie is spent."""
    settings = request.app[DEMO_SETTINGS]
    response = await _callback(request, settings)
    if STATE_COOKIE in request.cookies:
        response.del_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    return response


async def _callback(request: web.Request, settings: DemoSettings) -> web.Response:
    query = request.query
    expected = request.cookies.get(STATE_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), query.get("state", "").encode("utf-8", "replace")):
        return _failure(
            "Linking failed",
            "The state in this redirect does not match the one this browser started with: the link "
            f"expired ({STATE_TTL // 60} minutes), was started in another browser, or was started "
            f"at another host name than {settings.public_url} (cookies are per host).",
        )
    if "error" in query:
        description = query.get("error_description", "")
        return _failure(
            "Linking failed",
            f"The gateway redirected back with error={query['error']}" + (f": {description}" if description else "."),
        )
    code = query.get("code", "")
    if not code:
        return _failure("Linking failed", "The gateway redirected back without a code.")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": settings.platform_callback}
    return await _token_page(request, settings, form, title="Linked!")


async def refresh(request: web.Request) -> web.Response:
    """Step 3: refresh with the token carried in the sealed hidden field."""
    settings = request.app[DEMO_SETTINGS]
    form = await read_form(request)
    carried = open_field(settings.sealer, "demo-platform-refresh", form.get("refresh") if form else None)
    if carried is None:
        return _failure("Refresh failed", "The refresh form expired or was altered. Link the account again.")
    grant = {"grant_type": "refresh_token", "refresh_token": str(carried["refresh_token"])}
    return await _token_page(request, settings, grant, title="Refreshed!")


# --- talking to the gateway --------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What an HTTP call returned: status (0 if nothing came back), parsed JSON, or a problem."""

    status: int
    body: Any = None
    problem: str = ""


async def _call(request: web.Request, method: str, url: str, **kwargs: Any) -> Answer:
    """One call to the gateway (or the demo upstream), never raising: the page shows what happened."""
    session = request.app[DEMO_HTTP]
    try:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            raw = await response.content.read(_MAX_ANSWER)
            status = response.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Answer(0, problem=f"could not reach {url} ({type(exc).__name__})")
    try:
        return Answer(status, json.loads(raw))
    except ValueError:
        return Answer(status, problem=f"{url} answered HTTP {status} with something that is not JSON")


async def _token_page(request: web.Request, settings: DemoSettings, form: Mapping[str, str], *, title: str) -> web.Response:
    """POST to the gateway's /demo/token as the platform, then show the answer and use it."""
    token_url = f"{settings.public_url}/demo/token"
    headers = {"Authorization": basic_auth_header(CLIENT_ID, CLIENT_SECRET), "Accept": "application/json"}
    answer = await _call(request, "POST", token_url, data=dict(form), headers=headers)
    body = answer.body
    diagram = _diagram(request, form)
    if answer.status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        return _token_failure(title, token_url, answer, diagram)
    userinfo = await _call(
        request,
        "GET",
        f"{settings.public_url}/_demo/oauth/userinfo",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    return _success(settings, title, token_url, body, userinfo, diagram)


def _diagram(request: web.Request, form: Mapping[str, str]) -> str:
    """The trace's sequence diagram of the flow this token request belongs to (tracing is on in the demo)."""
    store = request.app.get(TRACE)
    if store is None:
        return ""
    grant = form.get("grant_type")
    flow = store.find("code", form.get("code", "")) if grant == "authorization_code" else store.find("refresh", form.get("refresh_token", ""))
    if flow is None:
        return ""
    # Only the demo's own random token is ever shown: one from gateway.yaml is the operator's secret.
    token = (f"with the trace token <code>{esc(store.settings.token)}</code> (a random one, made for the demo)"
             if store.settings.generated else "with the trace token from gateway.yaml (<code>trace.token</code>)")
    return f"""<h2>What happened, hop by hop</h2>
<p><small>The gateway's flow trace of this link (every secret shown as a hash). All recent flows:
<a href="{esc(request.app[DEMO_SETTINGS].public_url)}/_trace/">/_trace/</a>, {token}.</small></p>
<style>{TRACE_STYLE}</style>{render_flow(flow)}"""


def shorten(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The answer with its tokens cut to a few characters each end: enough to see them change.

    Both ends, not only a prefix: the demo's tokens are Fernet values, whose first dozen
    characters are a version byte and a timestamp, the same for every token of one second.
    """
    return {key: (_cut(value) if key in SECRET_FIELDS and isinstance(value, str) else value) for key, value in answer.items()}


def _cut(token: str) -> str:
    if len(token) <= 3 * _SHOWN_CHARS:
        return token[: min(_SHOWN_CHARS, len(token) // 2)] + "…"
    return f"{token[:_SHOWN_CHARS]}…{token[-_SHOWN_CHARS:]}"


def _pretty(value: Any) -> str:
    return esc(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def _success(
    settings: DemoSettings, title: str, token_url: str, body: Mapping[str, Any], userinfo: Answer, diagram: str
) -> web.Response:
    refresh_form = ""
    refresh_token = body.get("refresh_token")
    if isinstance(refresh_token, str) and refresh_token:
        sealed = settings.sealer.seal("demo-platform-refresh", {"refresh_token": refresh_token}, ttl=REFRESH_FIELD_TTL)
        refresh_form = f"""<form method="post" action="{esc(settings.public_url)}/_demo/platform/refresh">
{hidden("refresh", sealed)}
<p><button class="primary" type="submit">Refresh the token</button>
<small>POSTs <code>grant_type=refresh_token</code> to the gateway; the upstream rotates the refresh token.</small></p>
</form>"""
    userinfo_text = _pretty(userinfo.body) if not userinfo.problem else esc(userinfo.problem)
    content = f"""<p class="ok">The platform holds a token for your Demo Upstream account, obtained through the gateway.</p>
<h2>Token answer</h2>
<p><small>From <code>POST {esc(token_url)}</code>, already normalised by the gateway (tokens shortened here).</small></p>
<pre>{_pretty(shorten(body))}</pre>
<h2>The token works</h2>
<p><small><code>GET {esc(settings.public_url)}/_demo/oauth/userinfo</code> with <code>Authorization: Bearer …</code> answered HTTP {userinfo.status}:</small></p>
<pre>{userinfo_text}</pre>
{refresh_form}
{diagram}
<p><a href="{esc(settings.public_url)}/_demo/">Start over</a></p>"""
    return page("platform", title, content)


def _token_failure(title: str, token_url: str, answer: Answer, diagram: str) -> web.Response:
    """Show what the gateway's /token said. Error answers carry no tokens, but shorten anyway."""
    heading = "Linking failed" if title == "Linked!" else "Refresh failed"
    if answer.problem:
        detail = esc(answer.problem)
    else:
        shown = shorten(answer.body) if isinstance(answer.body, dict) else answer.body
        detail = f"HTTP {answer.status}\n{_pretty(shown)}"
    content = f"""<p class="error">The gateway's token endpoint did not give the platform a token.</p>
<p><small><code>POST {esc(token_url)}</code> answered:</small></p>
<pre>{detail}</pre>
{diagram}
<p><a class="button" href="/_demo/">Try again</a></p>"""
    return page("platform", heading, content, status=502)


def _failure(title: str, message: str) -> web.Response:
    return message_page("platform", title, message, link=("/_demo/", "Try again"))
