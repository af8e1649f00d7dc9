"""``POST /{provider}/token`` — the platform's Access Token URL (RFC 6749 §4.1.3, §6).

1. The body is parsed as ``application/x-www-form-urlencoded`` whatever the Content-Type says
   (one Alexa write-up saw a token request without the header); each parameter at most once.
2. The platform client is authenticated (:mod:`gateway.oauth.clientauth`).
3. ``authorization_code``: the sealed code is opened and checked — expiry (≤ 10 minutes), client,
   redirect URI (§4.1.3), PKCE verifier (RFC 7636 §4.6); ``refresh_token``: passed on (a
   context-keeping link's envelope opened first, and checked to be this provider's and client's).
4. The upstream request is built and sent as the mapping says (:mod:`gateway.upstream`); its answer
   is normalised into §5.1 JSON or a §5.2 error (:mod:`gateway.upstream.answer`).

Every answer is JSON with ``Cache-Control: no-store`` and ``Pragma: no-cache``. A sealed code is
single use (RFC 6749 §4.1.2) twice over: the gateway claims each code it redeems, in the process
and in the shared store if one is configured (:mod:`gateway.oauth.replay`), and the upstream's own code
inside is single use at the upstream. A refresh is answered once per token within the grace
window (:mod:`gateway.oauth.refresh`).
"""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from gateway.config.mapping import ProviderMapping
from gateway.oauth import pkce
from gateway.oauth.linkcontext import MAX_ENVELOPE_LENGTH, link_sealer, open_refresh, seal_refresh
from gateway.oauth.responses import InvalidGrant, InvalidRequest, OAuthError, TokenAnswer, UnsupportedGrantType
from gateway.oauth.seal import SealError
from gateway.oauth.state import CodePayload, as_grant_type, open_code
from gateway.observe.record import record_of
from gateway.observe.trace import hooks as trace
from gateway.upstream.client import prepare_token_request
from gateway.web.appkeys import CLAIMS, GRACE, RUNTIME, runtime_of
from gateway.web.handlers import authenticated_client, exchange, form_if_in, json_post_endpoint, read_form
from gateway.web.handlers.client_credentials import client_credentials_grant
from gateway.web.render import token_response

__all__ = ["token"]

#: The one parameter that may be longer than the rest: a context-keeping link's refresh envelope.
_LONG = ("refresh_token", MAX_ENVELOPE_LENGTH)


def _code_grant(mapping: ProviderMapping, form: dict[str, str], opened: CodePayload, client_id: str) -> None:
    """Check a sealed code against the token request; raise the RFC 6749 §5.2 error if it fails."""
    if opened.provider != mapping.name or opened.client_id != client_id:
        raise InvalidGrant("code was not issued to this client")
    redirect_uri = form.get("redirect_uri")
    if redirect_uri is None:
        raise InvalidRequest("redirect_uri is required: it was sent with the authorization request (RFC 6749 section 4.1.3)")
    if redirect_uri != opened.redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    verifier = form.get("code_verifier")
    if opened.challenge is not None:
        if verifier is None:
            raise InvalidRequest("code_verifier is required: the authorization request had a code_challenge")
        if not pkce.VERIFIER.fullmatch(verifier):
            raise InvalidRequest("code_verifier is malformed (RFC 7636 section 4.1)")
        if not pkce.verify(verifier, opened.challenge.value, opened.challenge.method):
            raise InvalidGrant("code_verifier does not match the code_challenge")
    elif verifier is not None:
        # RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a downgrade attempt.
        raise InvalidGrant("code_verifier given, but the authorization request had no code_challenge")


async def _handle(request: web.Request, mapping: ProviderMapping) -> web.Response:
    form = form_if_in(request, long_param=_LONG)
    if form is None:  # a body still arriving
        form = await read_form(request, long_param=_LONG)
    credentials = authenticated_client(request, form, mapping)
    if isinstance(credentials, web.Response):
        trace.token_refused(request, mapping, form)  # one small hop: anyone can send this
        return credentials
    trace.token_requested(request, mapping, form)

    requested = form.get("grant_type")
    record = record_of(request)
    record.grant = requested or ""
    grant_type = as_grant_type(requested)
    if grant_type == "authorization_code":
        body = await _authorization_code(request, mapping, form, credentials.client_id)
    elif grant_type == "refresh_token":
        body = await _refresh_token(request, mapping, form, credentials.client_id)
    elif grant_type == "client_credentials":
        body = await client_credentials_grant(request, mapping, form)
    elif not requested:
        raise InvalidRequest("grant_type is required")
    else:
        raise UnsupportedGrantType("grant_type must be authorization_code or refresh_token")
    record.outcome = "success"
    return token_response(body)


async def _authorization_code(
    request: web.Request, mapping: ProviderMapping, form: dict[str, str], client_id: str
) -> TokenAnswer:
    """RFC 6749 §4.1.3: open and check the sealed code, claim it, and exchange the upstream's."""
    app = request.app  # once: each ``request.app`` is two Python property calls
    runtime = app[RUNTIME].current
    code = form.get("code")
    if not code:
        raise InvalidRequest("code is required")
    try:
        opened = open_code(runtime.sealer, code)
    except SealError as err:  # forged, altered, expired, or not a code's shape (StateError)
        raise InvalidGrant(f"code is invalid: {err}") from None
    _code_grant(mapping, form, opened, client_id)
    claims, claim = app[CLAIMS], opened.fingerprint()
    if not await claims.claim_code(claim, ttl=runtime.config.code_ttl):
        raise InvalidGrant("code was already used")
    prepared = prepare_token_request(
        mapping,
        grant_type="authorization_code",
        callback_url=runtime.config.callback_url(mapping.name),
        code=opened.upstream_code,
        code_verifier=opened.upstream_verifier or "",
        context=opened.context,
    )
    try:
        body = await exchange(request, mapping, prepared)
    except OAuthError:
        await claims.release_code(claim)  # not spent here: the upstream decides whether it still works
        raise
    return _sealed_refresh(request, mapping, body, opened.context, client_id)


def _sealed_refresh(
    request: web.Request, mapping: ProviderMapping, body: TokenAnswer, context: dict[str, str], client_id: str
) -> TokenAnswer:
    """A mapping that keeps context hands the platform an envelope, never the upstream's token,
    bound to this provider and platform client (RFC 6749 §6)."""
    if mapping.keeps_context and body.get("refresh_token"):
        config = runtime_of(request).config
        body["refresh_token"] = seal_refresh(
            link_sealer(config.link_keys, config.keys), body["refresh_token"], context, provider=mapping.name, client_id=client_id
        )
    return body


def _refresh_token(
    request: web.Request, mapping: ProviderMapping, form: dict[str, str], client_id: str
) -> Coroutine[Any, Any, TokenAnswer]:
    """RFC 6749 §6: pass the refresh on, the way the mapping says — once per token within the
    grace window, however often and wherever it is retried (:mod:`gateway.oauth.refresh`).

    Not a coroutine itself: it checks and prepares, then hands over the grace window's, to be
    awaited (each coroutine layer costs its creation and an await)."""
    refresh_token = form.get("refresh_token")
    if not refresh_token:
        raise InvalidRequest("refresh_token is required")
    app = request.app  # once: each ``request.app`` is two Python property calls
    runtime = app[RUNTIME].current
    upstream_token, context = refresh_token, dict[str, str]()
    if mapping.keeps_context:  # the platform holds an envelope {upstream refresh token, context}
        try:
            upstream_token, context = open_refresh(
                link_sealer(runtime.config.link_keys, runtime.config.keys), refresh_token, provider=mapping.name, client_id=client_id
            )
        except SealError as err:
            raise InvalidGrant(f"refresh_token is invalid: {err}") from None
    prepared = prepare_token_request(
        mapping,
        grant_type="refresh_token",
        callback_url=runtime.config.callback_url(mapping.name),
        refresh_token=upstream_token,
        context=context,
    )

    async def call() -> TokenAnswer:
        body = await exchange(request, mapping, prepared, refresh_token_sent=upstream_token)
        return _sealed_refresh(request, mapping, body, context, client_id)

    return app[GRACE].refresh(  # keyed on the upstream's token: two texts of one envelope are one
        runtime.sealer,
        provider=mapping.name,
        client_id=client_id,
        refresh_token=upstream_token,
        grace=mapping.refresh_grace,
        deadline=prepared.timeout or runtime.config.upstream_timeout,
        # without an envelope to seal, the exchange is the call itself: one coroutine layer fewer
        call=call if mapping.keeps_context else functools.partial(exchange, request, mapping, prepared, refresh_token_sent=upstream_token),
    )


async def token(request: web.Request) -> web.Response:
    return await json_post_endpoint(request, "token", _handle, title="token", observe=trace.token_answered)
