"""``gateway console alexa|google PROVIDER``: what to type into each platform's console.

Every value comes from the loaded config (the same ``Config`` the server builds its routes and
its RFC 8414 metadata from), so what is printed is what is served. The platform's client secret is
printed only with ``--show-secrets``.

* Alexa developer console, Build > Account Linking, and with ``--json`` the body that
  ``ask smapi update-account-linking-info --account-linking-request`` takes: an
  ``accountLinkingRequest`` object (Amazon, "Account Linking Schemas", SMAPI v1).
* Google Home / Actions console, Account linking > OAuth > Authorization code.

Both platforms may authenticate with HTTP Basic or with the credentials in the body: the gateway
accepts either (:mod:`gateway.oauth.clientauth`); HTTP Basic is what is suggested.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from gateway.config.mapping import ProviderMapping
from gateway.config.settings import Config

__all__ = ["HIDDEN", "alexa_fields", "smapi_request", "google_fields", "render"]

HIDDEN = "<hidden: pass --show-secrets>"
#: Amazon: "You can specify up to 15 domains" / "up to 15 scopes".
ALEXA_LIST_LIMIT = 15


def _secret(mapping: ProviderMapping, show: bool) -> str:
    return mapping.platform.client_secret if show else HIDDEN


def _scopes(mapping: ProviderMapping) -> list[str]:
    """The scope the platform should ask for: the mapping's fixed upstream scope, if it has one."""
    scope = mapping.authorize.scope
    if not scope:
        return []
    separator = mapping.scope_separator.strip() or None
    return [part.strip() for part in scope.split(separator) if part.strip()]


def _domains(config: Config, mapping: ProviderMapping) -> list[str]:
    """Hosts the login page comes from besides the authorization URI's own: the upstream's.

    Amazon's ``domains``: "additional domains that your login page fetches content from" (Account
    Linking Schemas, SMAPI). A host with a placeholder (``{shop}.myshopify.com``, a tenant
    mapping) is not a domain: each user's login page is at a host only the user's answer names.
    """
    gateway_host = urlsplit(config.public_url).hostname or ""
    hosts = [urlsplit(mapping.authorize.url).hostname or ""]
    return sorted({host for host in hosts if host and host != gateway_host and "{" not in host})[:ALEXA_LIST_LIMIT]


def _domain_list(config: Config, mapping: ProviderMapping) -> list[str] | str:
    """The Domain List field's text: the domains, or why a tenant mapping has none to list."""
    domains = _domains(config, mapping)
    pattern = urlsplit(mapping.authorize.url).netloc
    if domains or mapping.tenant is None or "{" not in pattern:
        return domains or "(none)"
    return (
        f"(none fixed: each user's login page is at their own host, {pattern}, where {{{mapping.tenant.name}}} is "
        f"what the user types in the gateway's form (pattern {mapping.tenant.pattern.pattern}); "
        "list the hosts of tenants you know in advance, if any)"
    )


def _endpoints(config: Config, mapping: ProviderMapping) -> dict[str, str]:
    base = f"{config.public_url}/{mapping.name}"
    return {"authorize": f"{base}/authorize", "token": f"{base}/token", "callback": config.callback_url(mapping.name)}


def alexa_fields(config: Config, mapping: ProviderMapping, *, show_secrets: bool = False) -> list[tuple[str, Any]]:
    """The Alexa console's account-linking fields, in the order the console shows them."""
    urls = _endpoints(config, mapping)
    code = mapping.grant == "code"
    fields: list[tuple[str, Any]] = [
        ("Authorization Grant Type", "Auth Code Grant" if code else "Implicit Grant"),
        ("Your Web Authorization URI", urls["authorize"]),
    ]
    if code:
        fields.append(("Access Token URI", urls["token"]))
    fields += [
        ("Your Client ID", mapping.platform.client_id),
        ("Your Secret", _secret(mapping, show_secrets)),
    ]
    if code:
        fields.append(("Your Authentication Scheme", "HTTP Basic (Recommended) — credentials in request body also work"))
    fields += [
        ("Scope", _scopes(mapping) or "(none needed: the gateway passes the platform's scope on)"),
        ("Domain List", _domain_list(config, mapping)),
    ]
    if code:
        default = mapping.answer.expires_in_default
        fields.append(("Default Access Token Expiration Time", default if default is not None else "(leave empty)"))
    fields.append(("Redirect URI to register at the upstream (not in Alexa's console)", urls["callback"]))
    fields.append(("Alexa Redirect URLs this gateway accepts", mapping.platform.redirect_policy.describe()))
    return fields


def smapi_request(config: Config, mapping: ProviderMapping, *, show_secrets: bool = False) -> dict[str, Any]:
    """The ``accountLinkingRequest`` body for ``ask smapi update-account-linking-info``."""
    urls = _endpoints(config, mapping)
    request: dict[str, Any] = {
        "type": "AUTH_CODE" if mapping.grant == "code" else "IMPLICIT",
        "authorizationUrl": urls["authorize"],
        "domains": _domains(config, mapping),
        "clientId": mapping.platform.client_id,
        "scopes": _scopes(mapping)[:ALEXA_LIST_LIMIT],
    }
    if mapping.grant == "code":
        request.update(
            accessTokenUrl=urls["token"],
            clientSecret=_secret(mapping, show_secrets),
            accessTokenScheme="HTTP_BASIC",
        )
        if mapping.answer.expires_in_default is not None:  # optional in SMAPI; null is not allowed
            request["defaultTokenExpirationInSeconds"] = mapping.answer.expires_in_default
    return {"accountLinkingRequest": request}


def google_fields(config: Config, mapping: ProviderMapping, *, show_secrets: bool = False) -> list[tuple[str, Any]]:
    """Google's account-linking fields (OAuth, authorization code flow)."""
    urls = _endpoints(config, mapping)
    code = mapping.grant == "code"
    fields: list[tuple[str, Any]] = [
        ("Linking type", "OAuth — Authorization code" if code else "OAuth — Implicit"),
        ("Client ID issued by your Actions to Google", mapping.platform.client_id),
    ]
    if code:
        fields.append(("Client secret", _secret(mapping, show_secrets)))
    fields.append(("Authorization URL", urls["authorize"]))
    if code:
        fields.append(("Token URL", urls["token"]))
    fields += [
        ("Scopes", _scopes(mapping) or "(none needed: the gateway passes the platform's scope on)"),
    ]
    if code:
        fields.append(
            (
                "Google to transmit clientID and secret via HTTP basic auth header",
                "either: checked (HTTP Basic) or unchecked (in the body); the gateway accepts both",
            )
        )
    fields.append(("Redirect URI to register at the upstream (not in Google's console)", urls["callback"]))
    fields.append(("Google redirect URIs this gateway accepts", mapping.platform.redirect_policy.describe()))
    return fields


def _google_json(fields: list[tuple[str, Any]]) -> dict[str, Any]:
    return {name: value for name, value in fields}


def render(platform: str, config: Config, mapping: ProviderMapping, *, as_json: bool, show_secrets: bool) -> str:
    """The text ``gateway console`` prints."""
    if platform == "alexa":
        if as_json:
            return json.dumps(smapi_request(config, mapping, show_secrets=show_secrets), indent=2)
        fields = alexa_fields(config, mapping, show_secrets=show_secrets)
    else:
        fields = google_fields(config, mapping, show_secrets=show_secrets)
        if as_json:
            return json.dumps(_google_json(fields), indent=2, ensure_ascii=False)
    lines = []
    for name, value in fields:
        if isinstance(value, list):
            lines.append(f"{name}:")
            lines += [f"  - {item}" for item in value] or ["  (none)"]
        else:
            lines.append(f"{name}: {value}")
    return "\n".join(lines)
