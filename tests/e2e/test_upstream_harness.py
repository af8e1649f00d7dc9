"""The e2e upstream harness works on its own, without the gateway.

If these fail, gateway e2e failures mean nothing: they prove that the real
oidc-provider starts, that the browser driver gets through its login and
consent pages, and that the provider behaves as the gateway tests assume
(refresh tokens without offline_access, one-time codes, client auth errors).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yarl
from support.oidc_provider import (
    OidcUpstream,
    login_and_consent,
    running_oidc_provider,
)

from gateway.oauth.basicauth import basic_auth_header

# Never fetched: the driver stops at the redirect and hands the URL back.
REDIRECT_URI = "http://127.0.0.1:9/callback"
CLIENT_ID = "platform-client"
CLIENT_SECRET = "s3cret-value"


def client(**overrides: Any) -> dict[str, Any]:
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token"],
        **overrides,
    }


def authorize_url(upstream: OidcUpstream, state: str, **params: str | None) -> str:
    """The provider's authorize URL; a param given as None is left out."""
    query: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid offline_access",
        "state": state,
        "prompt": "consent",
        **params,
    }
    present = {k: v for k, v in query.items() if v is not None}
    return str(yarl.URL(upstream.authorization_endpoint).with_query(present))


@pytest.fixture
async def upstream() -> AsyncIterator[OidcUpstream]:
    async with running_oidc_provider([client()], access_token_ttl=600) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def token_request(
    session: aiohttp.ClientSession,
    upstream: OidcUpstream,
    form: dict[str, str],
    secret: str = CLIENT_SECRET,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": basic_auth_header(CLIENT_ID, secret)}
    async with session.post(upstream.token_endpoint, data=form, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_code_flow_refresh_and_one_time_code(
    upstream: OidcUpstream, browser: aiohttp.ClientSession
) -> None:
    state = secrets.token_urlsafe(16)
    redirect = await login_and_consent(
        browser, authorize_url(upstream, state), stop_at_prefix=REDIRECT_URI
    )
    assert redirect.query["state"] == state
    assert redirect.query["iss"] == upstream.issuer  # RFC 9207 issuer parameter
    code = redirect.query["code"]

    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    status, tokens = await token_request(browser, upstream, grant)
    assert status == 200, tokens
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 600
    assert tokens["refresh_token"]
    assert "." not in tokens["access_token"]  # opaque, not a JWT
    assert tokens["id_token"].count(".") == 2

    async with browser.get(
        upstream.userinfo_endpoint,
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["sub"] == "alice"

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    status, refreshed = await token_request(browser, upstream, refresh)
    assert status == 200, refreshed
    assert refreshed["access_token"] != tokens["access_token"]
    # No rotation by default: the same refresh token keeps working.
    assert refreshed["refresh_token"] == tokens["refresh_token"]

    status, reused = await token_request(browser, upstream, grant)
    assert status == 400
    assert reused["error"] == "invalid_grant"

    status, bad_client = await token_request(browser, upstream, refresh, secret="wrong")
    assert status == 401
    assert bad_client["error"] == "invalid_client"


async def test_deny_redirects_with_access_denied(
    upstream: OidcUpstream, browser: aiohttp.ClientSession
) -> None:
    state = secrets.token_urlsafe(16)
    redirect = await login_and_consent(
        browser, authorize_url(upstream, state), stop_at_prefix=REDIRECT_URI, deny=True
    )
    assert redirect.query["error"] == "access_denied"
    assert redirect.query["state"] == state
    assert "code" not in redirect.query


async def test_deny_on_consent_when_already_signed_in(
    upstream: OidcUpstream, browser: aiohttp.ClientSession
) -> None:
    first = await login_and_consent(
        browser, authorize_url(upstream, "one"), stop_at_prefix=REDIRECT_URI
    )
    assert "code" in first.query
    # The provider remembers the session: no login page now, only consent.
    redirect = await login_and_consent(
        browser, authorize_url(upstream, "two"), stop_at_prefix=REDIRECT_URI, deny=True
    )
    assert redirect.query["error"] == "access_denied"
    assert redirect.query["state"] == "two"


async def test_refresh_token_without_offline_access_and_client_secret_post(
    browser: aiohttp.ClientSession,
) -> None:
    post_client = client(token_endpoint_auth_method="client_secret_post")
    async with running_oidc_provider([post_client], rotate_refresh_token=True) as upstream:
        # No offline_access and no prompt=consent: a plain OAuth2-style request.
        url = authorize_url(upstream, "s", scope="openid profile", prompt=None)
        redirect = await login_and_consent(
            browser, url, stop_at_prefix=REDIRECT_URI, login="bob"
        )
        form = {
            "grant_type": "authorization_code",
            "code": redirect.query["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        async with browser.post(upstream.token_endpoint, data=form) as resp:
            tokens = await resp.json()
            assert resp.status == 200, tokens
        assert tokens["refresh_token"]
        assert tokens["expires_in"] == 3600
        assert set(tokens["scope"].split()) == {"openid", "profile"}

        form = {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        async with browser.post(upstream.token_endpoint, data=form) as resp:
            refreshed = await resp.json()
            assert resp.status == 200, refreshed
        assert refreshed["refresh_token"] != tokens["refresh_token"]  # rotated

        # The rotated-out refresh token is now refused.
        form["refresh_token"] = tokens["refresh_token"]
        async with browser.post(upstream.token_endpoint, data=form) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"] == "invalid_grant"


async def test_pkce_required(browser: aiohttp.ClientSession) -> None:
    async with running_oidc_provider([client()], pkce_required=True) as upstream:
        redirect = await login_and_consent(
            browser, authorize_url(upstream, "no-pkce"), stop_at_prefix=REDIRECT_URI
        )
        assert redirect.query["error"] == "invalid_request"
        assert redirect.query["state"] == "no-pkce"

        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        url = authorize_url(
            upstream, "pkce", code_challenge=challenge, code_challenge_method="S256"
        )
        redirect = await login_and_consent(browser, url, stop_at_prefix=REDIRECT_URI)
        grant = {
            "grant_type": "authorization_code",
            "code": redirect.query["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        status, tokens = await token_request(browser, upstream, grant)
        assert status == 200, tokens
        assert tokens["access_token"]
