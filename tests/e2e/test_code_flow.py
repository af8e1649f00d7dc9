"""Authorization code and refresh, end to end: Alexa → gateway → oidc-provider and back.

The upstream is a real OAuth2/OIDC server (panva's oidc-provider, from npm) driven through its
own login and consent pages; the platform's redirect URI is Alexa's, read from the Location
header and never followed.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from support.harness import (
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    PLATFORM_SECRET,
    UPSTREAM_POST_ID,
    Gateway,
    GatewayFactory,
    link,
    post_token,
    query_of,
)
from support.oauth import basic
from support.oidc_provider import login_and_consent

from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.state import open_code, seal_code


def code_form(code: str, redirect_uri: str = ALEXA_REDIRECT) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}


async def test_code_flow_then_refresh(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    back = await link(browser, gateway)
    assert back["state"] == "alexa-state-123"

    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]))
    status, token, headers = answer.status, answer.body, answer.headers
    assert status == 200, token
    assert headers["Cache-Control"] == "no-store" and headers["Pragma"] == "no-cache"
    assert token["token_type"] == "Bearer"
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
    assert token["access_token"] and token["refresh_token"]

    answer = await post_token(platform, gateway.endpoint("token"), {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    status, refreshed, headers = answer.status, answer.body, answer.headers
    assert status == 200, refreshed
    assert headers["Cache-Control"] == "no-store"
    assert refreshed["access_token"] != token["access_token"]
    assert isinstance(refreshed["expires_in"], int)


async def test_client_secret_in_body(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    back = await link(browser, gateway)
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]), auth="body")
    status, token = answer.status, answer.body
    assert status == 200, token
    assert token["access_token"]


async def test_upstream_with_client_secret_post(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """``client_auth: body`` reaches an upstream client registered for client_secret_post, for
    the code exchange and for refresh."""
    gateway = await make_gateway(client_auth="body", upstream_client_id=UPSTREAM_POST_ID)
    back = await link(browser, gateway)
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]))
    status, token = answer.status, answer.body
    assert status == 200, token
    answer = await post_token(platform, gateway.endpoint("token"), {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    status, refreshed = answer.status, answer.body
    assert status == 200, refreshed


async def test_upstream_refusing_the_gateways_credentials_is_not_the_platforms_fault(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """The upstream answers invalid_client to the gateway (a wrong upstream secret in the config):
    the platform gets 502 server_error, not an invalid_client that would blame its own secret."""
    gateway = await make_gateway(upstream_secret="not-the-upstream-secret")
    back = await link(browser, gateway)
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]))
    status, body = answer.status, answer.body
    assert status == 502, body
    assert body["error"] == "server_error"


async def test_wrong_client_secret(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    back = await link(browser, gateway)
    async with platform.post(
        gateway.endpoint("token"), data=code_form(back["code"]), headers={"Authorization": basic(PLATFORM_ID, "wrong")}
    ) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert response.headers["Cache-Control"] == "no-store"
        assert (await response.json())["error"] == "invalid_client"

    form = {**code_form(back["code"]), "client_id": PLATFORM_ID, "client_secret": "wrong"}
    async with platform.post(gateway.endpoint("token"), data=form) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_client"

    # The code was not spent by the failed attempts.
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]))
    status, token = answer.status, answer.body
    assert status == 200, token


async def test_both_client_auth_methods_at_once(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    back = await link(browser, gateway)
    form = {**code_form(back["code"]), "client_id": PLATFORM_ID, "client_secret": PLATFORM_SECRET}
    answer = await post_token(platform, gateway.endpoint("token"), form, auth="basic")
    status, body = answer.status, answer.body
    assert status == 400
    assert body["error"] == "invalid_request"


async def test_reused_code(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    back = await link(browser, gateway)
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]))
    status = answer.status
    assert status == 200
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]))
    status, body = answer.status, answer.body
    assert status == 400
    assert body["error"] == "invalid_grant"


async def test_expired_code(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    back = await link(browser, gateway)
    sealer = Sealer(gateway.config.keys)
    payload = open_code(sealer, back["code"])
    expired = seal_code(sealer, payload, ttl=300, now=0)  # sealed long ago, same key
    answer = await post_token(platform, gateway.endpoint("token"), code_form(expired))
    status, body = answer.status, answer.body
    assert status == 400
    assert body["error"] == "invalid_grant"
    assert "expired" in body["error_description"]


async def test_forged_and_tampered_codes(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    back = await link(browser, gateway)
    forged = seal_code(Sealer([generate_key()]), open_code(Sealer(gateway.config.keys), back["code"]), ttl=300)
    code = back["code"]
    tampered = code[:40] + ("A" if code[40] != "A" else "B") + code[41:]
    for bad in (forged, tampered, "not-a-code", ""):
        answer = await post_token(platform, gateway.endpoint("token"), code_form(bad))
        status, body = answer.status, answer.body
        assert status == 400, bad
        assert body["error"] in {"invalid_grant", "invalid_request"}
    # The genuine code still works.
    answer = await post_token(platform, gateway.endpoint("token"), code_form(code))
    status, token = answer.status, answer.body
    assert status == 200, token


async def test_token_redirect_uri_must_match(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    back = await link(browser, gateway)
    other_region = ALEXA_REDIRECT.replace("pitangui.amazon.com", "layla.amazon.com")
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"], other_region))
    status, body = answer.status, answer.body
    assert status == 400
    assert body["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/api/skill/link/M2AAAAAAAAAAAA",
        "https://pitangui.amazon.com.evil.example/api/skill/link/M2AAAAAAAAAAAA",
        "https://pitangui.amazon.com@evil.example/api/skill/link/M2AAAAAAAAAAAA",
        "https://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA/../../evil",
        "https://pitangui.amazon.com/api/skill/link/OTHERVENDOR1",
        "http://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA",
        "https://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA?next=https://evil.example",
        "https://pitangui.amazon.com:444/api/skill/link/M2AAAAAAAAAAAA",
    ],
)
async def test_mismatched_redirect_uri_gets_a_page_not_a_redirect(
    gateway: Gateway, browser: aiohttp.ClientSession, redirect_uri: str
) -> None:
    async with browser.get(gateway.authorize_url(redirect_uri=redirect_uri), allow_redirects=False) as response:
        assert response.status == 400
        assert "Location" not in response.headers
        assert response.content_type == "text/html"
        assert "redirect_uri" in await response.text()


async def test_unknown_client_gets_a_page(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    async with browser.get(gateway.authorize_url(client_id="someone-else"), allow_redirects=False) as response:
        assert response.status == 400
        assert "Location" not in response.headers


async def test_bad_response_type_is_redirected_with_error(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    async with browser.get(gateway.authorize_url(response_type="id_token"), allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(ALEXA_REDIRECT + "?")
    assert query_of(location) == {
        "error": "unsupported_response_type",
        "error_description": "this provider answers response_type=code",
        "state": "alexa-state-123",
    }


async def test_csrf_state_mismatch(gateway: Gateway, browser: aiohttp.ClientSession, upstream: Any) -> None:
    """A callback whose state is not the nonce this browser's cookie holds gets a page, no code."""
    callback = await login_and_consent(browser, gateway.authorize_url(), stop_at_prefix=gateway.endpoint("callback"))
    params = query_of(callback)
    assert params["code"] and params["state"]
    forged = f"{gateway.endpoint('callback')}?{urlencode({**params, 'state': 'attacker-nonce'})}"
    async with browser.get(forged, allow_redirects=False) as response:
        assert response.status == 400
        assert "Location" not in response.headers
    # An attacker's browser (no flow cookie) replaying the real callback gets a page too.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as attacker:
        async with attacker.get(str(callback), allow_redirects=False) as response:
            assert response.status == 400
            assert "Location" not in response.headers
    # The genuine browser still completes its flow.
    async with browser.get(str(callback), allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith(ALEXA_REDIRECT + "?code=")


async def test_user_denies(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    landing = await login_and_consent(
        browser, gateway.authorize_url(), stop_at_prefix="https://pitangui.amazon.com/", deny=True
    )
    params = query_of(landing)
    assert params["error"] == "access_denied"
    assert params["state"] == "alexa-state-123"
    assert "code" not in params


async def test_callback_opened_twice(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    callback = await login_and_consent(browser, gateway.authorize_url(), stop_at_prefix=gateway.endpoint("callback"))
    async with browser.get(str(callback), allow_redirects=False) as response:
        assert response.status == 302
    async with browser.get(str(callback), allow_redirects=False) as response:
        assert response.status == 400
        assert "Location" not in response.headers
        assert "already used" in await response.text()


async def test_two_flows_in_one_browser(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    """Two tabs: starting a second link does not clobber the first one's flow."""
    first = await login_and_consent(browser, gateway.authorize_url(state="first"), stop_at_prefix=gateway.endpoint("callback"))
    second = await login_and_consent(browser, gateway.authorize_url(state="second"), stop_at_prefix=gateway.endpoint("callback"))
    for callback, state in ((second, "second"), (first, "first")):
        async with browser.get(str(callback), allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            assert query_of(response.headers["Location"])["state"] == state


async def test_flow_cookie_attributes(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    async with browser.get(gateway.authorize_url(), allow_redirects=False) as response:
        assert response.status == 302
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Max-Age=600" in cookie
    assert "alexa-state-123" not in cookie  # encrypted, not merely encoded
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert "pitangui" not in base64.urlsafe_b64decode(value + "==").decode("latin-1")


async def test_token_endpoint_rejects_bad_requests_with_json(gateway: Gateway, platform: aiohttp.ClientSession) -> None:
    cases: list[tuple[dict[str, str], int, str]] = [
        ({}, 400, "invalid_request"),
        ({"grant_type": "password", "username": "u", "password": "p"}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
    ]
    for form, status, error in cases:
        answer = await post_token(platform, gateway.endpoint("token"), form)
        got_status, body, headers = answer.status, answer.body, answer.headers
        assert (got_status, body["error"]) == (status, error), form
        assert headers["Pragma"] == "no-cache"
    # Duplicated parameters (RFC 6749 §3.2) and a body far too large.
    async with platform.post(
        gateway.endpoint("token"), data="grant_type=refresh_token&grant_type=refresh_token", headers={"Authorization": PLATFORM_BASIC}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"
    async with platform.post(gateway.endpoint("token"), data="a=" + "x" * 100_000, headers={"Authorization": PLATFORM_BASIC}) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "invalid_request"


async def test_token_request_without_content_type(gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession) -> None:
    """One Alexa write-up saw a token request with no Content-Type: the form is parsed anyway."""
    back = await link(browser, gateway)
    body = urlencode(code_form(back["code"])).encode()
    async with platform.post(
        gateway.endpoint("token"), data=body, headers={"Authorization": PLATFORM_BASIC, "Content-Type": ""}, skip_auto_headers=["Content-Type"]
    ) as response:
        assert response.status == 200, await response.text()
        assert json.loads(await response.text())["access_token"]


async def test_flow_cookie_stays_under_the_browsers_4096_bytes(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    """Long platform states in several tabs: the oldest flows give way, the cookie stays small
    enough for browsers to keep, and the newest flow completes."""
    for tab in range(6):
        state = f"{tab}" + "s" * 1499
        async with browser.get(gateway.authorize_url(state=state), allow_redirects=False) as response:
            assert response.status == 302
            cookie = response.headers["Set-Cookie"]
            assert len(cookie) < 4096, len(cookie)
    callback = await login_and_consent(browser, gateway.authorize_url(state="last"), stop_at_prefix=gateway.endpoint("callback"))
    async with browser.get(str(callback), allow_redirects=False) as response:
        assert response.status == 302
        assert query_of(response.headers["Location"])["state"] == "last"


async def test_overlong_state_is_an_error_redirect(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    async with browser.get(gateway.authorize_url(state="s" * 1501), allow_redirects=False) as response:
        assert response.status == 302
        params = query_of(response.headers["Location"])
    assert params["error"] == "invalid_request"
    assert "state" in params["error_description"]
