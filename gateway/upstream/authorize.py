"""Build the upstream authorization request the way the mapping says (RFC 6749 §4.1.1).

The browser leg's counterpart of :func:`gateway.upstream.client.prepare_token_request`: given the
mapping, the gateway's callback URL, its ``state`` nonce and what the platform asked for, it gives
the URL the browser is sent to and what the flow must keep for the token request (the upstream
PKCE verifier, the parameters sent). No I/O and no web framework: ``/authorize`` calls it and
renders the redirect; tests call it directly.

Order of application: the standard parameters (``response_type=code``, ``client_id``,
``redirect_uri``, ``state``, ``scope``: the mapping's fixed one, or the platform's joined with the
upstream's separator) → upstream PKCE (RFC 7636 §4.1–4.3: a fresh verifier, its challenge and
method) → ``params`` verbs (remove → rename → add, templates filled with those values and
``{locale}``) → the URL template filled with the link's chosen values (the tenant,
:func:`gateway.config.templates.render_url`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.mapping import ProviderMapping
from gateway.config.templates import render_url
from gateway.oauth import pkce
from gateway.oauth.formencoding import form_part, form_urlencode

__all__ = ["AuthorizeRedirect", "prepare_authorize_redirect", "upstream_scope"]


@dataclass(frozen=True, slots=True)
class AuthorizeRedirect:
    """Where the browser goes upstream, and what the flow keeps of it."""

    #: The upstream authorization URL with its query (the redirect's ``Location``).
    location: str
    #: The parameters sent, after the mapping's verbs (the flow values come from them).
    params: Mapping[str, str]
    #: The upstream PKCE verifier the token request sends, or None without upstream PKCE.
    verifier: str | None


def upstream_scope(mapping: ProviderMapping, requested: str) -> str:
    """The mapping's fixed scope, or the platform's joined with the upstream's separator (§3.3)."""
    if mapping.authorize.scope is not None:
        return mapping.authorize.scope
    return mapping.scope_separator.join(requested.split())


def prepare_authorize_redirect(
    mapping: ProviderMapping,
    *,
    callback_url: str,
    state: str,
    scope: str = "",
    locale: str = "",
    chosen: Mapping[str, str] | None = None,
) -> AuthorizeRedirect:
    """The upstream authorization request for one flow (see the module docstring for the order).

    ``scope`` is what the platform asked for, ``locale`` its ``user_locale``/``ui_locales``,
    ``chosen`` the link's values the URL template may need (the tenant). Raises
    :class:`~gateway.config.templates.UnsafeUrl` when a chosen value would make the URL unsafe.
    """
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": mapping.upstream_client_id,
        "redirect_uri": callback_url,
        "state": state,
    }
    scope = upstream_scope(mapping, scope)
    if scope:
        params["scope"] = scope
    challenge = method = ""
    verifier: str | None = None
    if mapping.authorize.pkce != "none":
        verifier = pkce.new_verifier()
        method = mapping.authorize.pkce
        challenge = pkce.challenge_of(verifier, method)
        params.update(code_challenge=challenge, code_challenge_method=method)
    rules, url = mapping.authorize.params, mapping.authorize.url
    if rules.empty and "{" not in url:
        # Most mappings: no verbs and a fixed URL, so the query's start is the same for every flow
        # and only the flow's own values are encoded (the same text form_urlencode writes).
        location = _fixed_start(url, mapping.upstream_client_id, callback_url) + form_part(state)
        if scope:
            location += "&scope=" + form_part(scope)
        if verifier is not None:
            location += f"&code_challenge={form_part(challenge)}&code_challenge_method={form_part(method)}"
        return AuthorizeRedirect(location, params, verifier)
    values = {**params, "scope": scope, "code_challenge": challenge, "code_challenge_method": method, "locale": locale}
    params = rules.apply(params, values)
    url = render_url(url, chosen or {}, mapping.context_specs)
    return AuthorizeRedirect(f"{url}{'&' if '?' in url else '?'}{form_urlencode(params)}", params, verifier)


@functools.lru_cache(maxsize=256)
def _fixed_start(url: str, client_id: str, callback_url: str) -> str:
    """The upstream authorization URL up to the ``state`` value: the parameters that do not
    change from one flow to the next, encoded once (per mapping and public URL)."""
    fixed = form_urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": callback_url})
    return f"{url}{'&' if '?' in url else '?'}{fixed}&state="
