"""``POST /{provider}/revoke`` — token revocation (RFC 7009), e.g. when a user unlinks on Google.

The platform authenticates as at ``/token`` (RFC 7009 §2.1, the same client authentication). The
gateway keeps no tokens, so revocation means the upstream's: with ``upstream.revoke`` the token is
sent to the upstream's revocation endpoint with the gateway's upstream credentials; without it
there is nothing to revoke and the answer is ``200`` (§2.2). The upstream saying the token is
unknown or invalid is also ``200`` (§2.2: "invalid tokens do not cause an error response").
Errors (§2.2.1): ``invalid_request`` without ``token``, ``invalid_client`` (401),
``unsupported_token_type`` when the upstream says so, and ``503`` when the upstream cannot be
reached or fails, so the platform knows the token may still exist and retries later.

A link that keeps context holds a refresh *envelope* (:mod:`gateway.oauth.linkcontext`), which the
upstream has never seen: it is opened first and the upstream's own refresh token inside is what
is revoked (an envelope of another provider or client is refused as at ``/token``, §2.1; a token
that is no envelope — an access token — goes as it is). A revoked refresh token then leaves the
grace window (:func:`gateway.oauth.refresh.revoked`), so its remembered answer is not served for
the rest of the window.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from gateway.config.mapping import ProviderMapping, RevokeRequest
from gateway.oauth.linkcontext import MAX_ENVELOPE_LENGTH, link_sealer, open_envelope
from gateway.oauth.responses import (
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    TemporarilyUnavailable,
)
from gateway.oauth.seal import SealError
from gateway.observe.record import record_of
from gateway.upstream.client import PreparedRequest, TooLarge, Unreachable, basic_auth_header, send
from gateway.web.appkeys import GRACE, HTTP_CLIENT, runtime_of
from gateway.web.handlers import authenticated_client, json_post_endpoint, note_answer, note_failure, outcome, read_form

__all__ = ["revoke"]

log = logging.getLogger(__name__)

#: Upstream errors that mean "no such token" (RFC 7009 §2.2 / RFC 6749 §5.2 / RFC 6750 §3.1).
_UNKNOWN_TOKEN = frozenset({"invalid_token", "invalid_grant"})


def prepare_revoke_request(mapping: ProviderMapping, rules: RevokeRequest, token: str, hint: str) -> PreparedRequest:
    """RFC 7009 §2.1: ``token`` and ``token_type_hint`` as a form, with the gateway's client auth."""
    form = {"token": token}
    if hint:
        form["token_type_hint"] = hint
    headers = {"Accept": "application/json"}
    if rules.client_auth in ("basic", "both"):
        headers["Authorization"] = basic_auth_header(mapping.upstream_client_id, mapping.upstream_client_secret)
    if rules.client_auth in ("body", "both"):
        form.update(client_id=mapping.upstream_client_id, client_secret=mapping.upstream_client_secret)
    elif rules.client_auth == "none":
        form["client_id"] = mapping.upstream_client_id
    return PreparedRequest("POST", rules.url, {}, headers, form, None, mapping.token.timeout)


def _error_code(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    return document.get("error", "") if isinstance(document, dict) and isinstance(document.get("error"), str) else ""


def _upstream_token(request: web.Request, mapping: ProviderMapping, token: str, client_id: str) -> tuple[str, bool]:
    """The upstream's token that ``token`` stands for, and whether it is a refresh envelope's."""
    if not mapping.keeps_context:
        return token, False
    config = runtime_of(request).config
    try:
        envelope = open_envelope(link_sealer(config.link_keys, config.keys), token)
    except SealError:  # not an envelope (an access token, or nothing this gateway issued): as it is
        return token, False
    if not envelope.issued_to(mapping.name, client_id):
        raise InvalidGrant("token was not issued to this client")
    return envelope.upstream_refresh_token, True


async def _revoke_upstream(request: web.Request, mapping: ProviderMapping, rules: RevokeRequest, token: str, hint: str) -> None:
    prepared = prepare_revoke_request(mapping, rules, token, hint)
    record = record_of(request)
    try:
        answer = await send(request.app[HTTP_CLIENT], prepared, default_timeout=runtime_of(request).config.upstream_timeout)
    except (Unreachable, TooLarge) as err:
        note_failure(record, err)
        raise
    note_answer(record, answer)
    if 200 <= answer.status < 300:
        return
    code = _error_code(answer.body)
    if answer.status in (400, 404) and (code in _UNKNOWN_TOKEN or answer.status == 404):
        return  # §2.2: the token is already unusable: that is a successful revocation
    if code == "unsupported_token_type":
        raise OAuthError("the upstream cannot revoke this type of token", error="unsupported_token_type")
    record.upstream_failure = "http_5xx" if answer.status >= 500 else "refused"
    log.warning("upstream revocation for %s answered %d %s", mapping.name, answer.status, code or "(no error code)")
    raise TemporarilyUnavailable("the upstream did not revoke the token; try again later")


async def _handle(request: web.Request, mapping: ProviderMapping) -> web.Response:
    form = await read_form(request, long_param=("token", MAX_ENVELOPE_LENGTH))
    credentials = authenticated_client(request, form, mapping)
    if isinstance(credentials, web.Response):
        return credentials
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required (RFC 7009 section 2.1)")
    upstream_token, enveloped = _upstream_token(request, mapping, token, credentials.client_id)
    hint = "refresh_token" if enveloped else form.get("token_type_hint", "")
    if hint != "access_token":  # it may be a refresh token: its remembered answer goes first,
        await request.app[GRACE].revoked(  # even if the upstream then fails and the platform has to try again
            runtime_of(request).sealer,
            provider=mapping.name,
            client_id=credentials.client_id,
            refresh_token=upstream_token,
            grace=mapping.refresh_grace,
        )
    if mapping.revoke is not None:
        await _revoke_upstream(request, mapping, mapping.revoke, upstream_token, hint)
    outcome(request, "success")
    return web.Response(status=200, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def revoke(request: web.Request) -> web.Response:
    return await json_post_endpoint(request, "revoke", _handle, title="revocation")
