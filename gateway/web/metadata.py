"""RFC 8414 authorization-server metadata, one document per provider.

Each provider is its own authorization server to the platform, with the issuer
``<public_url>/<provider>``. RFC 8414 §3 puts the metadata of an issuer with a path component
at ``/.well-known/oauth-authorization-server`` *inserted before* the path:
``<public_url>/.well-known/oauth-authorization-server/<provider>`` (§3.1 shows the example).
Alexa+ MCP add-ons (OAuth 2.1) read it to find the endpoints and whether ``client_credentials``
is offered. The document is built from the loaded config, so it lists what is served: the
``client_credentials`` grant only when the mapping maps it, ``S256`` alone when the platform
must use it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.config.mapping import ProviderMapping
from gateway.oauth.responses import OAuthError
from gateway.web.appkeys import runtime_of
from gateway.web.render import token_error_response

__all__ = ["METADATA_PATH", "metadata_document", "metadata", "issuer_of"]

METADATA_PATH = "/.well-known/oauth-authorization-server"
#: How the platform may authenticate at /token and /revoke (RFC 6749 §2.3.1; clientauth.py).
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def issuer_of(public_url: str, provider: str) -> str:
    return f"{public_url}/{provider}"


def grant_types(mapping: ProviderMapping) -> list[str]:
    if mapping.grant == "implicit":
        return ["implicit"]
    grants = ["authorization_code", "refresh_token"]
    if mapping.client_credentials is not None:
        grants.append("client_credentials")
    return grants


def metadata_document(public_url: str, mapping: ProviderMapping) -> dict[str, Any]:
    """RFC 8414 §2 fields for ``mapping`` as served at ``public_url``."""
    issuer = issuer_of(public_url, mapping.name)
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "response_types_supported": ["token"] if mapping.grant == "implicit" else ["code"],
        "grant_types_supported": grant_types(mapping),
    }
    if mapping.grant != "implicit":
        document["token_endpoint"] = f"{issuer}/token"
        document["token_endpoint_auth_methods_supported"] = AUTH_METHODS
        document["code_challenge_methods_supported"] = ["S256"] if mapping.platform.pkce == "S256" else ["S256", "plain"]
    document["revocation_endpoint"] = f"{issuer}/revoke"
    document["revocation_endpoint_auth_methods_supported"] = AUTH_METHODS
    return document


async def metadata(request: web.Request) -> web.Response:
    """``GET /.well-known/oauth-authorization-server/{provider}`` (RFC 8414 §3.2: 200, JSON)."""
    config = runtime_of(request).config
    mapping = config.providers.get(request.match_info["provider"])
    if mapping is None:
        return token_error_response(OAuthError("there is no such provider on this gateway", status=404))
    return web.json_response(metadata_document(config.public_url, mapping))
