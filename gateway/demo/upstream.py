"""DEMO ONLY: a tiny authorization server that speaks an odd, Withings-like dialect.

It exists so the demo needs no outside service and so the gateway visibly *translates*: the
client id is called ``app_id`` at ``/authorize``, the token request wants ``action=requesttoken``
and the client credentials in the form body, answers are nested under ``body`` with ``expires``
as a string and a comma-separated scope, and errors come back with HTTP 200 and a non-zero
``status``. ``gateway/demo/demo.yaml`` is the mapping that undoes all of it.

Stateless like the gateway: the pending request travels between the login and consent pages in a
sealed hidden field; codes, access tokens and refresh tokens are themselves sealed values. The
price is that nothing can be used only once — a code can be exchanged again within its 60
seconds, and a rotated refresh token keeps working until it expires. A real authorization server
must make codes single-use (RFC 6749 §4.1.2); for a demo whose secrets are public anyway, the
statelessness (several replicas, no store) is worth more.

Routes (all under ``/_demo/oauth/``): ``GET authorize``, ``POST login``, ``POST consent``,
``POST token``, ``GET userinfo``.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from aiohttp import web

from gateway.demo.common import DEMO_SETTINGS, DemoSettings, open_field, read_form, redirect
from gateway.demo.pages import esc, hidden, message_page, page
from gateway.oauth.responses import NO_STORE, add_to_uri

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "ACCESS_TTL",
    "REFRESH_TTL",
    "CODE_TTL",
    "AUTHZ_TTL",
    "add_routes",
]

CLIENT_ID = "demo-gateway"
CLIENT_SECRET = "demo-gateway-secret"

AUTHZ_TTL = 600  # the login + consent pages
CODE_TTL = 60
ACCESS_TTL = 300
REFRESH_TTL = 30 * 24 * 3600

DEFAULT_SCOPES = ("profile", "email")
_SCOPE_TOKEN = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
_MAX_SCOPES = 10
_MAX_STATE = 512
_MAX_USER = 64

#: The dialect's error numbers. Any non-zero value marks an error (demo.yaml: ``status != `0```).
_ERROR_STATUS: Mapping[str, int] = MappingProxyType(
    {"invalid_request": 503, "invalid_client": 401, "invalid_code": 601, "invalid_refresh_token": 602}
)


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the demo upstream's endpoints."""
    router.add_get("/_demo/oauth/authorize", authorize)
    router.add_post("/_demo/oauth/login", login)
    router.add_post("/_demo/oauth/consent", consent)
    router.add_post("/_demo/oauth/token", token)
    router.add_get("/_demo/oauth/userinfo", userinfo)


# --- browser leg -------------------------------------------------------------------------------


async def authorize(request: web.Request) -> web.Response:
    """Validate the client and redirect URI first: until both are known good, never redirect."""
    settings = request.app[DEMO_SETTINGS]
    query = request.query
    if query.get("app_id") != CLIENT_ID:
        return _refusal("Unknown app_id: this demo server only knows the client “demo-gateway” (sent as app_id).")
    redirect_uri = query.get("redirect_uri", "")
    if redirect_uri != settings.gateway_callback:
        return _refusal(f"redirect_uri is not registered: the only one allowed is {settings.gateway_callback}")
    state = query.get("state", "")
    if len(state) > _MAX_STATE:
        return _refusal("state is too long.")
    if query.get("response_type") != "code":
        return _error_redirect(redirect_uri, state, "unsupported_response_type", "only response_type=code is supported")
    scopes = parse_scopes(query.get("scope", ""))
    if scopes is None:
        return _error_redirect(redirect_uri, state, "invalid_scope", "scope is malformed")
    pending = {"step": "login", "redirect_uri": redirect_uri, "state": state, "scope": scopes}
    return login_page(settings, settings.sealer.seal("demo-authz", pending, ttl=AUTHZ_TTL))


async def login(request: web.Request) -> web.Response:
    """Accept any user name (no password check: it is a demo) and show the consent page."""
    settings = request.app[DEMO_SETTINGS]
    form = await read_form(request)
    pending = _pending(settings, form, step="login")
    if form is None or pending is None:
        return _expired()
    user = form.get("username", "").strip()
    if not user or len(user) > _MAX_USER or not user.isprintable():
        return login_page(settings, form.get("request", ""), problem=f"Enter a user name of 1 to {_MAX_USER} printable characters.")
    sealed = settings.sealer.seal("demo-authz", {**pending, "step": "consent", "user": user}, ttl=AUTHZ_TTL)
    return consent_page(settings, sealed, user=user, scopes=pending["scope"])


async def consent(request: web.Request) -> web.Response:
    """Allow: redirect with a sealed code. Deny: redirect with ``error=access_denied``."""
    settings = request.app[DEMO_SETTINGS]
    form = await read_form(request)
    pending = _pending(settings, form, step="consent")
    if form is None or pending is None:
        return _expired()
    redirect_uri, state = pending["redirect_uri"], pending["state"]
    decision = form.get("decision")
    if decision == "deny":
        return _error_redirect(redirect_uri, state, "access_denied", "The user denied access on the demo consent page.")
    if decision != "allow":
        return _refusal("Choose Allow or Deny.")
    grant = {"user": pending["user"], "scope": pending["scope"], "redirect_uri": redirect_uri}
    code = settings.sealer.seal("demo-code", grant, ttl=CODE_TTL)
    return redirect(add_to_uri(redirect_uri, _with_state({"code": code}, state)))


def parse_scopes(raw: str) -> list[str] | None:
    """Scopes as a list; commas (this dialect) and spaces (RFC 6749) both separate.

    An empty scope means the default. ``None`` for something that is not a scope list.
    """
    scopes: list[str] = []
    for item in re.split(r"[,\s]+", raw.strip()):
        if not item:
            continue
        if not _SCOPE_TOKEN.fullmatch(item):
            return None
        if item not in scopes:
            scopes.append(item)
    if len(scopes) > _MAX_SCOPES:
        return None
    return scopes or list(DEFAULT_SCOPES)


def _pending(settings: DemoSettings, form: Mapping[str, str] | None, *, step: str) -> dict[str, Any] | None:
    """The sealed pending request from the hidden field, if it is ours, fresh and at ``step``.

    The step is sealed in so a login-page value can not skip the login by being posted to
    /consent. This sealed field is also the demo's CSRF protection: a forged form has no valid one.
    """
    if form is None:
        return None
    pending = open_field(settings.sealer, "demo-authz", form.get("request"))
    if pending is None or pending.get("step") != step:
        return None
    return pending


def _with_state(params: dict[str, str], state: str) -> dict[str, str]:
    """RFC 6749 §4.1.2: ``state`` goes back exactly when the client sent one."""
    return {**params, "state": state} if state else params


def _error_redirect(redirect_uri: str, state: str, error: str, description: str) -> web.Response:
    """RFC 6749 §4.1.2.1: errors go back to a redirect URI that has already been validated."""
    return redirect(add_to_uri(redirect_uri, _with_state({"error": error, "error_description": description}, state)))


def _refusal(message: str) -> web.Response:
    """An error shown in the browser, never a redirect (RFC 6749 §4.1.2.1, §10.15)."""
    return message_page("upstream", "Authorization request refused", message)


def _expired() -> web.Response:
    return message_page(
        "upstream",
        "This page has expired",
        f"The login and consent pages are valid for {AUTHZ_TTL // 60} minutes. Start again from the platform.",
        link=("/_demo/", "Start again"),
    )


def login_page(settings: DemoSettings, sealed: str, *, problem: str = "") -> web.Response:
    action = f"{settings.public_url}/_demo/oauth/login"
    warning = f'<p class="error">{esc(problem)}</p>' if problem else ""
    body = f"""{warning}
<p>Sign in to <strong>Demo Upstream</strong>, the provider whose accounts the platform wants to link.
Any user name works; the password is not checked.</p>
<form method="post" action="{esc(action)}">
{hidden("request", sealed)}
<label for="username">User name</label><input id="username" type="text" name="username" value="demo" maxlength="{_MAX_USER}" required autofocus>
<label for="password">Password <small>(anything, or nothing)</small></label><input id="password" type="password" name="password">
<p><button class="primary" type="submit">Sign in</button></p>
</form>"""
    return page("upstream", "Sign in to Demo Upstream", body)


def consent_page(settings: DemoSettings, sealed: str, *, user: str, scopes: list[str]) -> web.Response:
    action = f"{settings.public_url}/_demo/oauth/consent"
    items = "".join(f"<li><code>{esc(scope)}</code></li>" for scope in scopes)
    body = f"""<p>Signed in as <strong>{esc(user)}</strong>.</p>
<p>The application <code>{esc(CLIENT_ID)}</code> (the gateway, acting for the platform) asks for:</p>
<ul>{items}</ul>
<form method="post" action="{esc(action)}">
{hidden("request", sealed)}
<button class="primary" type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>"""
    return page("upstream", "Allow access?", body)


# --- server-to-server leg ----------------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    """The token endpoint in the demo dialect: form body in, ``{"status": 0, "body": ...}`` out."""
    settings = request.app[DEMO_SETTINGS]
    form = await read_form(request)
    if form is None:
        return _token_error("invalid_request", "request body too large")
    if form.get("action") != "requesttoken":
        return _token_error("invalid_request", "action must be requesttoken")
    if "Authorization" in request.headers and "client_secret" not in form:
        return _token_error("invalid_client", "send client_id and client_secret in the form body, not in a header")
    if not _client_ok(form.get("client_id", ""), form.get("client_secret", "")):
        return _token_error("invalid_client", "unknown client or wrong client_secret")
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        return _exchange_code(settings, form)
    if grant_type == "refresh_token":
        return _refresh(settings, form)
    return _token_error("invalid_request", "grant_type must be authorization_code or refresh_token")


def _client_ok(client_id: str, client_secret: str) -> bool:
    """Both compared in constant time; both always compared, so timing says nothing about which."""
    id_ok = hmac.compare_digest(client_id.encode("utf-8", "replace"), CLIENT_ID.encode())
    secret_ok = hmac.compare_digest(client_secret.encode("utf-8", "replace"), CLIENT_SECRET.encode())
    return id_ok and secret_ok


def _exchange_code(settings: DemoSettings, form: Mapping[str, str]) -> web.Response:
    if not form.get("code"):
        return _token_error("invalid_request", "code is missing")
    grant = open_field(settings.sealer, "demo-code", form.get("code"))
    if grant is None:
        return _token_error("invalid_code", "code is invalid or expired")
    if form.get("redirect_uri") != grant["redirect_uri"]:
        return _token_error("invalid_code", "redirect_uri does not match the authorization request")
    return _issue(settings, str(grant["user"]), list(grant["scope"]))


def _refresh(settings: DemoSettings, form: Mapping[str, str]) -> web.Response:
    """Rotates: every refresh issues a new refresh token (the old one is not revoked: no state)."""
    if not form.get("refresh_token"):
        return _token_error("invalid_request", "refresh_token is missing")
    grant = open_field(settings.sealer, "demo-refresh", form.get("refresh_token"))
    if grant is None:
        return _token_error("invalid_refresh_token", "refresh_token is invalid or expired")
    return _issue(settings, str(grant["user"]), list(grant["scope"]))


def _issue(settings: DemoSettings, user: str, scopes: list[str]) -> web.Response:
    grant = {"user": user, "scope": scopes}
    body = {
        "access_token": settings.sealer.seal("demo-access", grant, ttl=ACCESS_TTL),
        "refresh_token": settings.sealer.seal("demo-refresh", grant, ttl=REFRESH_TTL),
        "expires": str(ACCESS_TTL),
        "scope": ",".join(scopes),
        "token_type": "bearer",
        "userid": user,
    }
    return _json({"status": 0, "body": body})


def _token_error(error: str, message: str) -> web.Response:
    """Errors with HTTP 200 and a non-zero status: the dialect demo.yaml's ``error:`` rule reads."""
    return _json({"status": _ERROR_STATUS[error], "error": error, "message": message})


def _json(body: Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, separators=(",", ":")),
        content_type="application/json",
        headers={**NO_STORE, **(headers or {})},
    )


async def userinfo(request: web.Request) -> web.Response:
    """Who the access token belongs to: lets the platform page prove the token really works."""
    settings = request.app[DEMO_SETTINGS]
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    grant = open_field(settings.sealer, "demo-access", value.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        # RFC 6750 §3.1: no error code when the request carried no token at all.
        challenge = 'Bearer realm="demo", error="invalid_token"' if header else 'Bearer realm="demo"'
        return _json(
            {"error": "invalid_token", "error_description": "missing, invalid or expired access token"},
            status=401,
            headers={"WWW-Authenticate": challenge},
        )
    return _json({"user": grant["user"], "scope": ",".join(grant["scope"])})
