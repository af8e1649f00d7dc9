"""``grant_type=client_credentials`` at ``/{provider}/token`` (RFC 6749 §4.4; OAuth 2.1 §4.2).

Alexa+ MCP add-ons call the gateway machine to machine: the platform authenticates as the
platform client (already done by the token handler) and gets a token for no user. The gateway has
no tokens of its own to mint, so the grant is passed on to the upstream's own client-credentials
grant, with the gateway's upstream credentials, as ``upstream.token.client_credentials`` says
(``{}`` takes the token request's rules as they are). A mapping without that key refuses the grant
with ``unsupported_grant_type`` (RFC 6749 §5.2), and the metadata document does not list it.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config.mapping import ProviderMapping
from gateway.oauth.responses import TokenAnswer, UnsupportedGrantType
from gateway.upstream.client import prepare_token_request
from gateway.web.appkeys import runtime_of
from gateway.web.handlers import exchange

__all__ = ["client_credentials_grant"]


async def client_credentials_grant(request: web.Request, mapping: ProviderMapping, form: dict[str, str]) -> TokenAnswer:
    """RFC 6749 §4.4.2/§4.4.3: send the grant (with the platform's ``scope``, if any) upstream."""
    if mapping.client_credentials is None:
        raise UnsupportedGrantType("this provider's mapping does not map the client_credentials grant")
    prepared = prepare_token_request(
        mapping,
        grant_type="client_credentials",
        callback_url=runtime_of(request).config.callback_url(mapping.name),
        scope=mapping.scope_separator.join(form.get("scope", "").split()),
    )
    # §4.4.3: a refresh token SHOULD NOT be included; one the upstream sends anyway is passed on.
    return await exchange(request, mapping, prepared)
