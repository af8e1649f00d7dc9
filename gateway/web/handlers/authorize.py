"""``GET /{provider}/authorize`` — the platform's Authorization URL (RFC 6749 §4.1.1, §4.2.1).

Checks, in the order RFC 6749 §4.1.2.1 dictates: the client and the redirect URI first — any
problem there is an HTML page, never a redirect (no open redirector, §10.15) — then everything
else, reported to the now-validated redirect URI with ``error=`` and the platform's ``state``.

On success the flow (redirect URI, state, PKCE challenge, the upstream PKCE verifier) goes into
the encrypted flow cookie under a fresh nonce, and the browser goes to the upstream with the
mapped parameters, ``redirect_uri=<public_url>/<provider>/callback`` and ``state=<nonce>``
(:func:`gateway.upstream.authorize.prepare_authorize_redirect` builds that request).
"""

from __future__ import annotations

import hmac
import re
import secrets

from aiohttp import web

from gateway.config.mapping import ProviderMapping
from gateway.config.templates import UnsafeUrl
from gateway.oauth import pkce
from gateway.oauth.linkcontext import initial_context
from gateway.oauth.responses import InvalidRequest, OAuthError, UnsupportedResponseType, add_to_uri
from gateway.oauth.state import Challenge, FlowEntry, ResponseType
from gateway.observe.trace import hooks as trace
from gateway.upstream.authorize import prepare_authorize_redirect
from gateway.web.appkeys import runtime_of
from gateway.web.handlers import single_params
from gateway.web.handlers.browser import Answer, BrowserResult, Page, Redirect, browser_endpoint
from gateway.web.render import error_page
from gateway.web.session import FlowStore, FlowTooLarge
from gateway.web.tenant import ask_tenant

__all__ = ["authorize", "MAX_STATE_LENGTH"]

#: The platform's state travels in the flow cookie, which browsers cap at 4096 bytes.
MAX_STATE_LENGTH = 1500
#: Control characters (NUL, CR, LF, ...): never part of a scope (RFC 6749 §3.3).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_client(mapping: ProviderMapping, params: dict[str, str]) -> str:
    """The validated redirect URI; raise for a problem that must not be redirected."""
    client_id = params.get("client_id", "")
    if not hmac.compare_digest(client_id.encode(), mapping.platform.client_id.encode()):
        raise OAuthError("The app that sent you here is not known to this gateway (client_id).", error="unauthorized_client")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise InvalidRequest("The request names no redirect_uri, so there is nowhere to send you back to.")
    if not mapping.platform.redirect_policy.allows(redirect_uri):
        raise InvalidRequest("The redirect_uri of this request is not one this gateway may send you to.")
    return redirect_uri


def _platform_pkce(mapping: ProviderMapping, params: dict[str, str]) -> Challenge | None:
    """RFC 7636 §4.3/§4.4.1: the challenge to seal into the code, validated."""
    challenge = params.get("code_challenge")
    requested = params.get("code_challenge_method", "plain")
    method = pkce.as_method(requested)
    if challenge is None:
        if mapping.platform.pkce in ("required", "S256"):
            raise InvalidRequest("code_challenge is required (RFC 7636)")
        return None
    if mapping.platform.pkce == "S256" and method != "S256":
        raise InvalidRequest("code_challenge_method must be S256 (OAuth 2.1 section 4.1.1)")
    if method is None:
        raise InvalidRequest("code_challenge_method must be S256 or plain")
    if not pkce.CHALLENGE.fullmatch(challenge) or (method == "S256" and len(challenge) != 43):
        raise InvalidRequest("code_challenge is malformed (RFC 7636 section 4.2)")
    return Challenge(challenge, method)


def _error_redirect(err: OAuthError, redirect_uri: str, state: str | None, *, fragment: bool) -> Redirect:
    """RFC 6749 §4.1.2.1 / §4.2.2.1: an error to the validated redirect URI, with the state."""
    body = {"error": err.error, "error_description": err.description}
    if state is not None:
        body["state"] = state
    return Redirect(add_to_uri(redirect_uri, body, fragment=fragment), err.error, carries_secret=False, error=err)


async def authorize(request: web.Request) -> web.Response:
    return await browser_endpoint(request, "authorize", _authorize, _observe)


def _observe(request: web.Request, mapping: ProviderMapping, result: BrowserResult) -> None:
    """The trace's first hops: the platform's request and, when it was good, the upstream redirect.
    The tenant form and a wrong method add none (the flow starts when the user is sent on)."""
    if isinstance(result, Answer):
        return
    if isinstance(result, Page) or result.error is not None:
        trace.authorized(request, mapping.name, dict(request.query), error=result.error)
        return
    trace.authorized(request, mapping.name, result.params, nonce=result.nonce, location=result.location, mapping_step=result.mapping_step)


async def _authorize(request: web.Request, mapping: ProviderMapping) -> BrowserResult:
    if request.method == "POST" and mapping.tenant is None:  # only the tenant form posts here
        response = error_page(OAuthError("This address takes GET.", error="invalid_request", status=405))
        response.headers["Allow"] = "GET"
        return Answer(response)
    try:
        params = single_params(list(request.query.items()))
        redirect_uri = _check_client(mapping, params)
    except OAuthError as err:
        return Page(err, err.error)

    response_type = params.get("response_type", "")
    implicit = mapping.grant == "implicit"
    state = params.get("state")
    try:
        expected: ResponseType = "token" if implicit else "code"
        if response_type != expected:
            raise UnsupportedResponseType(f"this provider answers response_type={expected}")
        if state is not None and len(state) > MAX_STATE_LENGTH:
            raise InvalidRequest(f"state is longer than {MAX_STATE_LENGTH} characters")
        if _CONTROL.search(params.get("scope", "")):
            # RFC 6749 §3.3: a scope token is printable ASCII; a NUL or line break would travel on
            # into the upstream request (a header template's {authorize_scope}) and break it there.
            raise OAuthError("scope may hold only printable characters and spaces", error="invalid_scope", status=400)
        challenge = None if implicit else _platform_pkce(mapping, params)
    except OAuthError as err:
        return _error_redirect(err, redirect_uri, state, fragment=implicit)

    runtime = runtime_of(request)
    config = runtime.config
    chosen: dict[str, str] = {}
    if mapping.tenant is not None:  # the user says which tenant first (gateway/web/tenant.py)
        asked = await ask_tenant(request, mapping, mapping.tenant, config, runtime.sealer)
        if isinstance(asked, web.Response):
            return Answer(asked, "tenant_form")
        chosen[mapping.tenant.name] = asked
    nonce = secrets.token_urlsafe(24)

    try:
        upstream = prepare_authorize_redirect(
            mapping,
            callback_url=config.callback_url(mapping.name),
            state=nonce,
            scope=params.get("scope", ""),
            locale=params.get("user_locale") or params.get("ui_locales") or "",
            chosen=chosen,
        )
    except UnsafeUrl as err:  # pragma: no cover - ask_tenant checked the value against this URL
        return _error_redirect(InvalidRequest(str(err)), redirect_uri, state, fragment=implicit)
    flow = FlowEntry(
        provider=mapping.name,
        redirect_uri=redirect_uri,
        response_type=expected,
        state=state,
        upstream_verifier=upstream.verifier,
        challenge=challenge,
        # values the token request needs back (gateway.oauth.linkcontext)
        context=initial_context(mapping, upstream.params) | chosen if mapping.keeps_context else None,
    )

    flows = FlowStore.of(request, config.cookie)
    try:
        flows.add(nonce, flow)
    except FlowTooLarge as err:  # a state of many non-ASCII characters, say
        return _error_redirect(InvalidRequest(str(err)), redirect_uri, state, fragment=implicit)
    return Redirect(upstream.location, "success", carries_secret=False, params=params, nonce=nonce,
                    mapping_step=f"authorize.params, PKCE {mapping.authorize.pkce}")
