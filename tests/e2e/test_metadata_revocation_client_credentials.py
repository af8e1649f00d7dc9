"""End to end: RFC 8414 metadata, RFC 7009 revocation, the client_credentials grant, the
smartthings and alexa-mcp profiles, and ``gateway console`` — a real gateway on 127.0.0.1 in
front of a small test upstream on 127.0.0.1 that records what it is sent."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import jsonschema
import pytest
from support.harness import ALEXA_REDIRECT, PLATFORM_ID, PLATFORM_SECRET, UPSTREAM_ID, UPSTREAM_SECRET, Gateway, start_gateway
from support.upstream import RecordingUpstream, Reply

from gateway.cli.commands import main
from gateway.cli.console import HIDDEN
from gateway.cli.linktest import run_linktest
from gateway.oauth import pkce
from gateway.oauth.basicauth import basic_auth_header

#: Amazon, "Account Linking Schemas" (SMAPI v1, developer.amazon.com/docs/alexa/smapi/account-linking-schemas.html):
#: the accountLinkingRequest fields, their types, the 15-item limits on scopes and domains, and the two
#: accessTokenScheme values. Unknown fields are refused so a misspelt field name fails here.
SMAPI_ACCOUNT_LINKING = {
    "type": "object",
    "additionalProperties": False,
    "required": ["accountLinkingRequest"],
    "properties": {
        "accountLinkingRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "authorizationUrl", "clientId"],
            "properties": {
                "type": {"enum": ["AUTH_CODE", "IMPLICIT"]},
                "authorizationUrl": {"type": "string", "format": "uri", "pattern": "^https?://"},
                "accessTokenUrl": {"type": "string", "pattern": "^https?://"},
                "clientId": {"type": "string", "minLength": 1},
                "clientSecret": {"type": "string", "minLength": 1},
                "accessTokenScheme": {"enum": ["HTTP_BASIC", "REQUEST_BODY_CREDENTIALS"]},
                "scopes": {"type": "array", "items": {"type": "string"}, "maxItems": 15},
                "domains": {"type": "array", "items": {"type": "string"}, "maxItems": 15},
                "defaultTokenExpirationInSeconds": {"type": "integer", "minimum": 1},
                "skipOnEnablement": {"type": ["string", "boolean"]},
                "redirectUrls": {"type": "array", "items": {"type": "string"}},
                "reciprocalAccessTokenUrl": {"type": "string"},
                "authorizationUrlsByPlatform": {"type": "array"},
                "voiceForwardAccountLinking": {"type": "string"},
            },
            # "Required only when AUTH_CODE is specified"
            "if": {"properties": {"type": {"const": "AUTH_CODE"}}},
            "then": {"required": ["accessTokenUrl", "clientSecret", "accessTokenScheme"]},
        }
    },
}


#: Never requested: the linktest test uses a mapping whose authorize URL is the test upstream's.
AUTHORIZE = "https://auth.example/authorize"


M2M_TOKEN = Reply(body={"access_token": "m2m-access", "token_type": "Bearer", "expires_in": 600})
UNSUPPORTED_GRANT = Reply(status=400, body={"error": "unsupported_grant_type"})


@pytest.fixture
async def test_upstream() -> AsyncIterator[RecordingUpstream]:
    """Token and revocation endpoints on 127.0.0.2 that record each request: the token endpoint
    knows only client_credentials; revocation answers 200 until a test says otherwise."""
    async with RecordingUpstream(host="127.0.0.2") as upstream:
        upstream.fault_for = lambda request: M2M_TOKEN if request.grant_type == "client_credentials" else UNSUPPORTED_GRANT
        upstream.answer("/revoke", Reply(status=200))
        upstream.answer("/authorize", Reply(body="<html><body>sign in</body></html>", content_type="text/html"))
        yield upstream


def calls(upstream: RecordingUpstream) -> list[tuple[str, dict[str, str], str]]:
    """(endpoint, form, Authorization) of each token and revocation request, in order."""
    return [
        (request.path.removeprefix("/"), request.form, request.headers.get("authorization", ""))
        for request in upstream.requests
        if request.path in ("/token", "/revoke")
    ]


def _mapping(
    upstream: str, *, profile: str = "alexa", extra_token: str = "", extra_upstream: str = "", authorize: str = AUTHORIZE
) -> str:
    return textwrap.dedent(
        f"""\
        platform:
          profile: {profile}
          client_id: {PLATFORM_ID}
          client_secret: ${{PLATFORM_SECRET}}
        upstream:
          client_id: {UPSTREAM_ID}
          client_secret: ${{UPSTREAM_SECRET}}
          authorize: {{url: "{authorize}", scope: "read write"}}
          token:
            url: "{upstream}/token"
            timeout: 3
        """
    ) + textwrap.indent(textwrap.dedent(extra_token), "    ") + textwrap.indent(textwrap.dedent(extra_upstream), "  ")


@pytest.fixture
async def gateway(tmp_path: Path, test_upstream: RecordingUpstream) -> AsyncIterator[Gateway]:
    url = test_upstream.url
    mappings = {
        "full": _mapping(
            url,
            extra_token="client_credentials:\n  params: {add: {audience: api}}\n",
            extra_upstream=f'revoke: {{url: "{url}/revoke"}}\n',
        ),
        "plain": _mapping(url),
        "things": _mapping(url, profile="smartthings"),
        "mcp": _mapping(url, profile="alexa-mcp"),
        "mcp-local": _mapping(url, profile="alexa-mcp", authorize=f"{url}/authorize"),
    }
    running = await start_gateway(tmp_path, mappings)
    yield running
    await running.runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": basic_auth_header(client_id, secret)}


BASIC = basic(PLATFORM_ID, PLATFORM_SECRET)



def _basic_of(header: str) -> tuple[str, str]:
    user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    return user, password


# --- RFC 8414 metadata ---------------------------------------------------------------------------


async def test_metadata_is_served_at_the_rfc8414_path_with_the_served_endpoints(
    gateway: Gateway, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{gateway.url}/.well-known/oauth-authorization-server/full") as response:
        assert response.status == 200 and response.content_type == "application/json"
        document = await response.json()
    issuer = f"{gateway.url}/full"
    assert document["issuer"] == issuer  # §3.3: the issuer the path was built from
    assert document["authorization_endpoint"] == f"{issuer}/authorize"
    assert document["token_endpoint"] == f"{issuer}/token"
    assert document["revocation_endpoint"] == f"{issuer}/revoke"
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]
    assert document["code_challenge_methods_supported"] == ["S256", "plain"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    # The endpoints it names are the gateway's own, and they answer as such.
    async with client.post(document["token_endpoint"], data={"grant_type": "password"}, headers=BASIC) as response:
        assert (await response.json())["error"] == "unsupported_grant_type"
    async with client.post(document["revocation_endpoint"], data={"token": "t"}, headers=BASIC) as response:
        assert response.status == 200


async def test_metadata_lists_client_credentials_only_when_mapped_and_s256_only_when_required(
    gateway: Gateway, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{gateway.url}/.well-known/oauth-authorization-server/plain") as response:
        plain = await response.json()
    assert "client_credentials" not in plain["grant_types_supported"]
    async with client.get(f"{gateway.url}/.well-known/oauth-authorization-server/mcp") as response:
        assert (await response.json())["code_challenge_methods_supported"] == ["S256"]
    for path in ("/.well-known/oauth-authorization-server/nope", "/full/.well-known/oauth-authorization-server"):
        async with client.get(gateway.url + path) as response:
            assert response.status == 404


# --- client_credentials -------------------------------------------------------------------------


async def test_client_credentials_goes_to_the_upstreams_own_grant(
    gateway: Gateway, client: aiohttp.ClientSession, test_upstream: RecordingUpstream
) -> None:
    form = {"grant_type": "client_credentials", "scope": "tools:read"}
    async with client.post(gateway.endpoint("token", "full"), data=form, headers=BASIC) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
        assert response.headers["Cache-Control"] == "no-store"
    assert body["access_token"] == "m2m-access" and body["expires_in"] == 600
    [(kind, sent, authorization)] = calls(test_upstream)
    assert kind == "token"
    assert sent == {"grant_type": "client_credentials", "scope": "tools:read", "audience": "api"}
    assert _basic_of(authorization) == (UPSTREAM_ID, UPSTREAM_SECRET)


async def test_client_credentials_is_refused_cleanly_when_not_mapped_or_not_authenticated(
    gateway: Gateway, client: aiohttp.ClientSession, test_upstream: RecordingUpstream
) -> None:
    async with client.post(gateway.endpoint("token", "plain"), data={"grant_type": "client_credentials"}, headers=BASIC) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "unsupported_grant_type"
    wrong = basic(PLATFORM_ID, "not-the-secret")
    async with client.post(gateway.endpoint("token", "full"), data={"grant_type": "client_credentials"}, headers=wrong) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_client"
    assert calls(test_upstream) == []


# --- RFC 7009 revocation ------------------------------------------------------------------------


async def test_revocation_is_passed_to_the_upstream_endpoint(
    gateway: Gateway, client: aiohttp.ClientSession, test_upstream: RecordingUpstream
) -> None:
    form = {"token": "rt-123", "token_type_hint": "refresh_token", "client_id": PLATFORM_ID, "client_secret": PLATFORM_SECRET}
    async with client.post(gateway.endpoint("revoke", "full"), data=form) as response:
        assert response.status == 200
        assert await response.read() == b""
    [(kind, sent, authorization)] = calls(test_upstream)
    assert kind == "revoke" and sent == {"token": "rt-123", "token_type_hint": "refresh_token"}
    assert _basic_of(authorization) == (UPSTREAM_ID, UPSTREAM_SECRET)


@pytest.mark.parametrize(
    ("upstream_status", "upstream_body", "status", "error"),
    [
        (400, {"error": "invalid_token"}, 200, None),  # §2.2: an unknown token is revoked already
        (400, {"error": "unsupported_token_type"}, 400, "unsupported_token_type"),  # §2.2.1
        (503, None, 503, "temporarily_unavailable"),  # §2.2.1: the token may still exist; retry
        (401, {"error": "invalid_client"}, 503, "temporarily_unavailable"),  # the gateway's own fault
    ],
)
async def test_revocation_answers_per_rfc7009(
    gateway: Gateway,
    client: aiohttp.ClientSession,
    test_upstream: RecordingUpstream,
    upstream_status: int,
    upstream_body: dict[str, Any] | None,
    status: int,
    error: str | None,
) -> None:
    test_upstream.answer("/revoke", Reply(status=upstream_status, body=upstream_body))
    async with client.post(gateway.endpoint("revoke", "full"), data={"token": "at-1"}, headers=BASIC) as response:
        assert response.status == status
        if error:
            assert (await response.json())["error"] == error


async def test_revocation_without_an_upstream_endpoint_and_bad_requests(
    gateway: Gateway, client: aiohttp.ClientSession, test_upstream: RecordingUpstream
) -> None:
    async with client.post(gateway.endpoint("revoke", "plain"), data={"token": "at-1"}, headers=BASIC) as response:
        assert response.status == 200
    async with client.post(gateway.endpoint("revoke", "full"), data={}, headers=BASIC) as response:
        assert response.status == 400 and (await response.json())["error"] == "invalid_request"
    async with client.post(gateway.endpoint("revoke", "full"), data={"token": "x"}) as response:
        assert response.status == 401 and (await response.json())["error"] == "invalid_client"
    async with client.get(gateway.endpoint("revoke", "full")) as response:
        assert response.status == 405 and response.headers["Allow"] == "POST"
    async with client.post(gateway.endpoint("revoke", "nope"), data={"token": "x"}, headers=BASIC) as response:
        assert response.status == 404
    assert calls(test_upstream) == []


# --- smartthings and alexa-mcp at /authorize ----------------------------------------------------


def _authorize(gateway: Gateway, provider: str, redirect_uri: str, **extra: str) -> str:
    query = {"client_id": PLATFORM_ID, "redirect_uri": redirect_uri, "state": "s-1", "response_type": "code", **extra}
    return gateway.endpoint("authorize", provider) + "?" + urlencode(query)


@pytest.mark.parametrize("region", ["us", "eu", "ap"])
async def test_smartthings_regional_callbacks_are_accepted(gateway: Gateway, client: aiohttp.ClientSession, region: str) -> None:
    redirect = f"https://c2c-{region}.smartthings.com/oauth/callback"
    async with client.get(_authorize(gateway, "things", redirect), allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith("https://auth.example/authorize?")


@pytest.mark.parametrize(
    "redirect",
    [
        "https://c2c-xx.smartthings.com/oauth/callback",
        "http://c2c-us.smartthings.com/oauth/callback",
        "https://c2c-us.smartthings.com/oauth/callback/",
        "https://c2c-us.smartthings.com/oauth/callback?x=1",
        "https://c2c-us.smartthings.com.evil.example/oauth/callback",
        "https://c2c-us.smartthings.com@evil.example/oauth/callback",
        "https://c2c-us.smartthings.com:444/oauth/callback",
        ALEXA_REDIRECT,
    ],
)
async def test_smartthings_near_misses_are_refused_without_a_redirect(
    gateway: Gateway, client: aiohttp.ClientSession, redirect: str
) -> None:
    async with client.get(_authorize(gateway, "things", redirect), allow_redirects=False) as response:
        assert response.status == 400
        assert "Location" not in response.headers


async def test_alexa_mcp_requires_pkce_s256(gateway: Gateway, client: aiohttp.ClientSession) -> None:
    verifier = pkce.new_verifier()
    cases = [
        ({}, "code_challenge is required"),
        ({"code_challenge": verifier, "code_challenge_method": "plain"}, "must be S256"),
        ({"code_challenge": pkce.challenge_of(verifier, "S256")}, "must be S256"),  # the default is plain
    ]
    for extra, reason in cases:
        async with client.get(_authorize(gateway, "mcp", ALEXA_REDIRECT, **extra), allow_redirects=False) as response:
            assert response.status == 302
            location = urlsplit(response.headers["Location"])
            assert f"{location.scheme}://{location.netloc}{location.path}" == ALEXA_REDIRECT
            query = parse_qs(location.query)
            assert query["error"] == ["invalid_request"] and reason in query["error_description"][0]
    s256 = {"code_challenge": pkce.challenge_of(verifier, "S256"), "code_challenge_method": "S256"}
    async with client.get(_authorize(gateway, "mcp", ALEXA_REDIRECT, **s256), allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith("https://auth.example/authorize?")


# --- gateway console ----------------------------------------------------------------------------


def _console(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["console", *args, "--config", str(tmp_path / "gateway.yaml")]) == 0
    return capsys.readouterr().out


@pytest.fixture
def console_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_SECRET", PLATFORM_SECRET)
    monkeypatch.setenv("UPSTREAM_SECRET", UPSTREAM_SECRET)


async def test_console_alexa_json_is_a_smapi_request_for_the_served_urls(
    gateway: Gateway, client: aiohttp.ClientSession, tmp_path: Path, capsys: pytest.CaptureFixture[str], console_env: None
) -> None:
    body = json.loads(_console(tmp_path, capsys, "alexa", "full", "--json"))
    jsonschema.validate(body, SMAPI_ACCOUNT_LINKING)
    request = body["accountLinkingRequest"]
    assert request["clientSecret"] == HIDDEN
    assert request["type"] == "AUTH_CODE" and request["accessTokenScheme"] == "HTTP_BASIC"
    assert request["scopes"] == ["read", "write"] and request["domains"] == ["auth.example"]
    assert request["defaultTokenExpirationInSeconds"] == 3600
    shown = json.loads(_console(tmp_path, capsys, "alexa", "full", "--json", "--show-secrets"))["accountLinkingRequest"]
    assert shown["clientSecret"] == PLATFORM_SECRET
    # Play Alexa with exactly these values against the running gateway.
    query = {"client_id": request["clientId"], "redirect_uri": ALEXA_REDIRECT, "state": "s", "response_type": "code"}
    async with client.get(request["authorizationUrl"], params=query, allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith("https://auth.example/authorize?")
    auth = basic(shown["clientId"], shown["clientSecret"])  # HTTP_BASIC, as printed
    async with client.post(request["accessTokenUrl"], data={"grant_type": "authorization_code", "code": "x"}, headers=auth) as response:
        assert (await response.json())["error"] == "invalid_grant"  # authenticated; the code is bad


async def test_console_text_for_alexa_and_google(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], console_env: None
) -> None:
    alexa = _console(tmp_path, capsys, "alexa", "full")
    assert f"Your Web Authorization URI: {gateway.url}/full/authorize\n" in alexa
    assert f"Access Token URI: {gateway.url}/full/token\n" in alexa
    assert f"{gateway.url}/full/callback" in alexa
    assert PLATFORM_SECRET not in alexa and HIDDEN in alexa
    google = json.loads(_console(tmp_path, capsys, "google", "full", "--json", "--show-secrets"))
    assert google["Authorization URL"] == f"{gateway.url}/full/authorize"
    assert google["Token URL"] == f"{gateway.url}/full/token"
    assert google["Client secret"] == PLATFORM_SECRET
    assert google["Client ID issued by your Actions to Google"] == PLATFORM_ID


def test_console_refuses_an_unknown_provider(tmp_path: Path, capsys: pytest.CaptureFixture[str], console_env: None) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "p.yaml").write_text(_mapping("http://127.0.0.1:9"))
    (tmp_path / "gateway.yaml").write_text("keys: []\ncookie: {secure: false}\n")
    assert main(["console", "alexa", "nope", "--config", str(tmp_path / "gateway.yaml")]) == 2
    assert "no provider 'nope'" in capsys.readouterr().err


async def test_linktest_plays_pkce_s256_where_the_profile_requires_it(gateway: Gateway) -> None:
    checks = await run_linktest(gateway.config, "mcp-local")
    authorize = [check for check in checks if check.name == "authorize"]
    assert authorize and all(check.verdict != "FAIL" for check in authorize), checks


def test_console_alexa_explains_a_tenant_host_instead_of_listing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``{shop}.myshopify.com`` is a pattern, not a domain: not in the list, explained in the text."""
    for name in ("SHOPIFY_CLIENT_ID", "SHOPIFY_CLIENT_SECRET", "SHOPIFY_PLATFORM_CLIENT_ID", "SHOPIFY_PLATFORM_CLIENT_SECRET"):
        monkeypatch.setenv(name, "x" * 32)
    (tmp_path / "mappings").mkdir()
    shipped = Path(__file__).resolve().parents[2] / "mappings" / "shopify.yaml"
    (tmp_path / "mappings" / "shopify.yaml").write_text(shipped.read_text())
    (tmp_path / "gateway.yaml").write_text("keys: ['" + "k" * 43 + "=']\ncookie: {secure: false}\n")
    body = json.loads(_console(tmp_path, capsys, "alexa", "shopify", "--json"))
    jsonschema.validate(body, SMAPI_ACCOUNT_LINKING)
    assert body["accountLinkingRequest"]["domains"] == []
    text = _console(tmp_path, capsys, "alexa", "shopify")
    domain_line = next(line for line in text.splitlines() if line.startswith("Domain List"))
    assert "{shop}.myshopify.com" in domain_line and "none fixed" in domain_line and "the gateway's form" in domain_line
    assert "  - {shop}" not in text
