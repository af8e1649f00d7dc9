"""The ``upstream`` a provider's published metadata gives: OpenID Connect Discovery 1.0 or RFC 8414.

From the document (already fetched and checked: :func:`gateway.config.discovery.read`):

- ``authorization_endpoint``, ``token_endpoint``, ``issuer`` (checked at the callback, RFC 9207),
  and ``require_iss`` when ``authorization_response_iss_parameter_supported`` is true (§2.4);
- client authentication from ``token_endpoint_auth_methods_supported`` (RFC 8414 §2; absent means
  ``client_secret_basic``): HTTP Basic when listed, as RFC 6749 §2.3.1 asks every server to support,
  else the secret in the body, else none (a public client);
- PKCE ``S256`` when ``code_challenge_methods_supported`` lists it (RFC 7636 §4.2);
- ``offline_access`` when ``scopes_supported`` lists it, and ``prompt=consent`` with it, as
  OpenID Connect Core 1.0 §11 requires before a refresh token is issued;
- ``revocation_endpoint`` (RFC 7009) and its client authentication.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.config.models import ClientAuth
from gateway.init.yamltext import Path

__all__ = ["MetadataDraft", "upstream_from_metadata", "client_auth_of"]

_METHODS: tuple[tuple[str, ClientAuth], ...] = (
    ("client_secret_basic", "basic"), ("client_secret_post", "body"), ("none", "none"),
)


@dataclass
class MetadataDraft:
    """The ``upstream`` keys a metadata document gives, and the notes on what was chosen."""

    upstream: dict[str, Any] = field(default_factory=dict)
    notes: dict[Path, str] = field(default_factory=dict)


def _list(document: Mapping[str, Any], name: str) -> list[str] | None:
    value = document.get(name)
    return [str(item) for item in value] if isinstance(value, list) else None


def client_auth_of(methods: Sequence[str] | None) -> tuple[ClientAuth, str | None]:
    """The client authentication for a list of RFC 8414 method names, and a note when it is not plain Basic."""
    listed = list(methods) if methods is not None else ["client_secret_basic"]  # RFC 8414 §2: the default
    for name, auth in _METHODS:
        if name in listed:
            if auth == "basic":
                note = None if len(listed) == 1 else f"the provider lists {', '.join(listed)}: HTTP Basic preferred (RFC 6749 §2.3.1)"
                return auth, note
            if auth == "body":
                return auth, "the provider does not list client_secret_basic: the secret goes in the body (client_secret_post)"
            return auth, "the provider lists only none: a public client, no secret is sent"
    return "basic", f"the provider lists only {', '.join(listed)}, which the gateway does not send: HTTP Basic tried"


def upstream_from_metadata(document: Mapping[str, Any], url: str) -> MetadataDraft:
    """The ``upstream`` section's keys from a checked metadata ``document`` fetched from ``url``."""
    draft = MetadataDraft()
    up = draft.upstream
    up["issuer"] = document["issuer"]
    draft.notes[("upstream", "issuer")] = f"from {url}"
    if document.get("authorization_response_iss_parameter_supported") is True:
        up["require_iss"] = True
        draft.notes[("upstream", "require_iss")] = "the provider says it sends iss at the callback (RFC 9207 §2.4)"
    authorize: dict[str, Any] = {"url": document["authorization_endpoint"]}
    methods = _list(document, "code_challenge_methods_supported") or []
    if "S256" in methods:
        authorize["pkce"] = "S256"
    elif "plain" in methods:
        authorize["pkce"] = "plain"
        draft.notes[("upstream", "authorize", "pkce")] = "the provider lists only plain PKCE (RFC 7636 §4.2: S256 when it can)"
    scopes = _list(document, "scopes_supported") or []
    if "offline_access" in scopes:
        authorize["scope"] = " ".join(s for s in ("openid", "offline_access") if s in scopes)
        draft.notes[("upstream", "authorize", "scope")] = (
            "offline_access for a refresh token; this replaces the platform's scope: add the scopes your skill needs"
        )
        authorize["params"] = {"add": {"prompt": "consent"}}
        draft.notes[("upstream", "authorize", "params", "add", "prompt")] = (
            "OpenID Connect Core §11: offline_access is ignored without prompt=consent"
        )
    up["authorize"] = authorize
    auth, note = client_auth_of(_list(document, "token_endpoint_auth_methods_supported"))
    up["token"] = {"url": document["token_endpoint"], "client_auth": auth}
    if note:
        draft.notes[("upstream", "token", "client_auth")] = note
    grants = _list(document, "grant_types_supported")
    if grants is not None and "refresh_token" not in grants:
        draft.notes[("upstream", "token")] = "the provider does not list the refresh_token grant: links end when the token expires"
    revocation = document.get("revocation_endpoint")
    if isinstance(revocation, str) and revocation:
        revoke_auth, revoke_note = client_auth_of(
            _list(document, "revocation_endpoint_auth_methods_supported") or _list(document, "token_endpoint_auth_methods_supported")
        )
        up["revoke"] = {"url": revocation, "client_auth": revoke_auth}
        if revoke_note:
            draft.notes[("upstream", "revoke", "client_auth")] = revoke_note
    return draft
