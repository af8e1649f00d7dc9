"""``GET /{provider}/callback`` — where the upstream sends the browser back (RFC 6749 §4.1.2).

1. The upstream ``state`` must name a live flow in this browser's flow cookie (CSRF, §10.12).
   Without one there is no validated redirect URI, so every such problem is an HTML page: cookie
   expired or blocked, flow already completed (callback opened twice), forged or foreign state.
2. The flow is taken out of the cookie (single use), and its nonce is claimed in the store
   (:mod:`gateway.oauth.store`), so a copy of the cookie from before the callback can not complete a
   second link — at another replica either, when the store is shared.
3. RFC 9207: when the mapping names the upstream ``issuer``, an ``iss`` that differs is a mix-up
   attack and gets a page, not a redirect with a code.
   With ``require_iss`` (or an upstream whose discovery document says it sends ``iss``), a
   missing ``iss`` is refused too (§2.4).
4. An upstream ``error`` goes on to the platform's redirect URI with the platform's ``state``.
5. Code grant: the upstream code is sealed (with client, redirect URI, PKCE) into the code the
   platform gets. Implicit grant: the gateway exchanges the code itself and answers with the token
   in the URL *fragment* (§4.2.2), never the query.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config.mapping import ProviderMapping
from gateway.config.templates import UnsafeUrl
from gateway.oauth.linkcontext import kept_at_callback
from gateway.oauth.responses import AUTHORIZATION_ERRORS, OAuthError, add_to_uri
from gateway.oauth.state import CODE_PURPOSE, CodePayload, FlowEntry, seal_code
from gateway.observe.record import record_of
from gateway.observe.trace import hooks as trace
from gateway.upstream.client import prepare_token_request
from gateway.web.appkeys import CLAIMS, runtime_of
from gateway.web.handlers import MAX_PARAM_LENGTH, exchange, single_params
from gateway.web.handlers.browser import BrowserResult, Page, Redirect, browser_endpoint
from gateway.web.session import FlowStore

__all__ = ["callback", "CODE_PURPOSE"]  # CODE_PURPOSE: its home is gateway.oauth.state

#: Upstream authorization errors that are about the gateway's request, not the platform's.
_GATEWAY_REQUEST_ERRORS = frozenset({"invalid_request", "unauthorized_client", "unsupported_response_type"})
_RESTART = "Please go back to the app and start linking your account again."


_USED_STATE = OAuthError(
    "This sign-in was already used to link your account: this page was opened twice. "
    "Go back to the app to see whether linking worked.",
    error="invalid_request",
)


def _lost_flow(flows: FlowStore, nonce: str) -> OAuthError:
    if nonce and flows.was_completed(nonce):
        return _USED_STATE
    if not flows.had_cookie:
        return OAuthError(
            "This sign-in took too long or your browser did not keep the gateway's cookie. " + _RESTART,
            error="invalid_request",
        )
    return OAuthError(
        "This sign-in answer does not belong to a link attempt in this browser: it expired, "
        "or it was not started here. " + _RESTART,
        error="invalid_request",
    )


def _to_platform(
    flow: FlowEntry, params: dict[str, str], *, fragment: bool, outcome: str, code: str = "", stopped: str = ""
) -> Redirect:
    """Back to the redirect URI validated at /authorize, with the platform's own ``state``.

    The fragment form leads with ``state`` (Alexa's documented ``#state=…&access_token=…``); the
    query form follows RFC 6749 §4.1.2's ``?code=…&state=…``.
    """
    if flow.state is not None:
        params = {"state": flow.state, **params} if fragment else {**params, "state": flow.state}
    return Redirect(add_to_uri(flow.redirect_uri, params, fragment=fragment), outcome, code=code, stopped=stopped)


async def _implicit_answer(
    request: web.Request, mapping: ProviderMapping, code: str, flow: FlowEntry, context: dict[str, str]
) -> dict[str, str]:
    """RFC 6749 §4.2.2: the gateway redeems the code itself; the token goes in the fragment."""
    config = runtime_of(request).config
    prepared = prepare_token_request(
        mapping,
        grant_type="authorization_code",
        callback_url=config.callback_url(mapping.name),
        code=code,
        code_verifier=flow.upstream_verifier or "",
        context=context,
    )
    token = await exchange(request, mapping, prepared)
    result = {"access_token": token["access_token"], "token_type": "Bearer"}
    if "expires_in" in token:
        result["expires_in"] = str(token["expires_in"])
    if "scope" in token:
        result["scope"] = token["scope"]
    return result


async def callback(request: web.Request) -> web.Response:
    return await browser_endpoint(request, "callback", _callback, _observe)


def _observe(request: web.Request, mapping: ProviderMapping, result: BrowserResult) -> None:
    """The trace's last hop of a callback: the redirect back to the platform. (The callback hop
    itself is added where the handler has read the flow, :func:`_callback`: the implicit grant's
    upstream hops come between the two.)"""
    if isinstance(result, Redirect):
        trace.redirected(request, result.location, code=result.code, stopped=result.stopped)


async def _callback(request: web.Request, mapping: ProviderMapping) -> BrowserResult:
    runtime = runtime_of(request)
    try:
        params = single_params(list(request.query.items()))
    except OAuthError as err:
        return Page(err, err.error)

    flows = FlowStore.of(request, runtime.config.cookie)
    nonce = params.get("state", "")
    flow = flows.take(nonce, provider=mapping.name) if nonce else None
    if flow is None:
        trace.called_back(request, mapping, params, failure="lost_flow")
        return Page(_lost_flow(flows, nonce), "lost_flow")
    if not await request.app[CLAIMS].claim_state(nonce, ttl=runtime.config.cookie.max_age):
        # A copy of the cookie from before this flow's first callback (another tab, a replay,
        # another replica): the nonce was already used, so this is not a second link.
        return Page(_USED_STATE, "lost_flow")

    issuer = params.get("iss")
    if mapping.issuer is not None and (issuer != mapping.issuer if issuer is not None else mapping.require_iss):
        trace.called_back(request, mapping, params, failure="issuer_mismatch")
        return Page(
            OAuthError("The sign-in answer came from an unexpected server (RFC 9207 issuer mismatch).", error="access_denied"),
            "issuer_mismatch",
            title="Account linking stopped",
        )

    implicit = flow.response_type == "token"
    trace.called_back(request, mapping, params)
    if "error" in params:
        error = params["error"] if params["error"] in AUTHORIZATION_ERRORS else "server_error"
        description = params.get("error_description", "")[:300]
        if error in _GATEWAY_REQUEST_ERRORS:
            # The upstream found fault with the gateway's own request (its mapping or client):
            # the platform's request was fine, so it must not read as the platform's mistake.
            description = f"upstream refused the gateway's request ({error}): {description}".rstrip(": ")
            error = "server_error"
        answer = OAuthError(description, error=error).as_dict()  # the §5.2 character set, cleaned
        return _to_platform(flow, answer, fragment=implicit, outcome=error)

    code = params.get("code")
    if not code:
        return _to_platform(flow, {"error": "server_error", "error_description": "upstream sent no code"}, fragment=implicit,
                            outcome="server_error")

    try:
        context = kept_at_callback(mapping, params, flow.context or {}) if mapping.keeps_context else {}
    except UnsafeUrl as exc:
        return _to_platform(flow, OAuthError(str(exc), error="server_error").as_dict(), fragment=implicit, outcome="server_error",
                            stopped="unsafe_context")

    if implicit:
        record_of(request).grant = "implicit"
        try:
            token = await _implicit_answer(request, mapping, code, flow, context)
        except OAuthError as err:
            error = err.error if err.error in AUTHORIZATION_ERRORS else "access_denied"
            return _to_platform(flow, {"error": error, "error_description": err.description}, fragment=True, outcome=err.error)
        return _to_platform(flow, token, fragment=True, outcome="success")

    sealed = CodePayload.from_flow(flow, upstream_code=code, client_id=mapping.platform.client_id, context=context)
    platform_code = seal_code(runtime.sealer, sealed, ttl=runtime.config.code_ttl)
    if len(platform_code) > MAX_PARAM_LENGTH:
        # /token refuses a longer `code`: a code issued here must be one /token redeems.
        return _to_platform(flow, {"error": "server_error", "error_description": "upstream code is too long"}, fragment=False,
                            outcome="server_error", stopped="code_too_long")
    return _to_platform(flow, {"code": platform_code}, fragment=False, outcome="success", code=platform_code)
