"""The upstream authorization request, built without a server (gateway/upstream/authorize.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.oauth import load_mapping

from gateway.oauth import pkce
from gateway.upstream.authorize import prepare_authorize_redirect
from unit.oauth.test_linkcontext import with_context

CALLBACK = "https://link.example/prov/callback"


def test_the_standard_parameters_then_pkce_then_the_mappings_verbs(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        "platform: {profile: alexa, client_id: alexa-skill, client_secret: alexa-skill-secret}\n"
        "upstream:\n"
        "  client_id: up\n"
        "  client_secret: up-secret\n"
        "  scope_separator: ','\n"
        "  authorize:\n"
        "    url: 'https://auth.example.com/authorize?tenant=common'\n"
        "    pkce: S256\n"
        "    params: {rename: {scope: scopes}, add: {lang: '{locale}', braces: '{{literal}}'}}\n"
        "  token: {url: 'https://auth.example.com/token'}\n",
    )
    built = prepare_authorize_redirect(mapping, callback_url=CALLBACK, state="nonce-1", scope="read write", locale="de-DE")
    parts = urlsplit(built.location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "auth.example.com", "/authorize")
    sent = dict(parse_qsl(parts.query))
    assert sent.pop("tenant") == "common", "the URL's own query is kept"
    assert built.verifier is not None and pkce.VERIFIER.fullmatch(built.verifier)
    assert sent == {
        "response_type": "code", "client_id": "up", "redirect_uri": CALLBACK, "state": "nonce-1", "scopes": "read,write",
        "code_challenge": pkce.challenge_of(built.verifier, "S256"), "code_challenge_method": "S256",
        "lang": "de-DE", "braces": "{literal}",
    }
    assert dict(built.params) == {key: value for key, value in sent.items()}


def test_the_tenant_fills_the_url_and_no_pkce_means_no_verifier(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        with_context(
            "tenant: {name: shop, label: Shop, pattern: '[a-z0-9-]+'}\n",
            "url: 'https://{shop}.example.com/token'",
            authorize="https://{shop}.example.com/authorize",
        ),
    )
    built = prepare_authorize_redirect(mapping, callback_url=CALLBACK, state="n", chosen={"shop": "acme"})
    assert built.location.startswith("https://acme.example.com/authorize?response_type=code&") and built.verifier is None


@pytest.mark.parametrize("pkce_method", ["none", "S256", "plain"])
@pytest.mark.parametrize("url", ["https://auth.example.com/authorize", "https://auth.example.com/authorize?tenant=common"])
def test_a_mapping_without_verbs_writes_what_urlencode_writes(tmp_path: Path, pkce_method: str, url: str) -> None:
    """Without ``params`` verbs and with a fixed URL, the query's start is encoded once per
    mapping: the URL must still be, byte for byte, the URL followed by ``urlencode`` of the
    parameters sent, whatever the client id, the callback URL, the state and the scope."""
    mapping = load_mapping(
        tmp_path,
        "platform: {profile: alexa, client_id: alexa-skill, client_secret: alexa-skill-secret}\n"
        f"upstream: {{client_id: up, client_secret: s, authorize: {{url: '{url}', pkce: {pkce_method}}}, token: {{url: 'https://auth.example.com/token'}}}}\n",
    )
    assert mapping.authorize.params.empty

    text = st.text(st.characters(codec="utf-8"), max_size=40)

    @settings(max_examples=60, deadline=None)
    @given(client_id=text, callback=text, state=text, scope=text)
    def check(client_id: str, callback: str, state: str, scope: str) -> None:
        each = dataclasses.replace(mapping, upstream_client_id=client_id)
        built = prepare_authorize_redirect(each, callback_url=callback, state=state, scope=scope)
        assert built.location == f"{url}{'&' if '?' in url else '?'}{urlencode(built.params)}"
        assert list(built.params)[:4] == ["response_type", "client_id", "redirect_uri", "state"]
        assert (built.verifier is None) == (pkce_method == "none")

    check()
