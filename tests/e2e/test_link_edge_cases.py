"""The hard edges of account linking, end to end against a real oidc-provider upstream.

1. Implicit mode: the token in the URL fragment of the redirect URI received at /authorize.
2. PKCE (RFC 7636) on the platform side and toward the upstream.
3. Refresh: rotation passed on, an omitted refresh token, an integer ``expires_in``, extras.
4. Alexa app-to-app linking: an https universal-link redirect URI from the mapping.
5. The 4.5 s budget: slow, refusing and broken upstream token endpoints.
6. Mix-up defence (RFC 9207): a callback with another ``iss``.
7. Real browsers: tabs, abandoned flows, back-and-retry, lost cookies, callbacks opened twice.

Where the real oidc-provider can not misbehave on demand (slow, HTTP 500, no refresh token in a
refresh answer), the recording upstream (:class:`support.upstream.RecordingUpstream`) plays the
upstream token endpoint and records what it received.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import aiohttp
import pytest
import yarl
from support.harness import (
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    UPSTREAM_ID,
    UPSTREAM_SECRET,
    VENDOR,
    Gateway,
    GatewayFactory,
    link,
    post_token,
    query_of,
)
from support.oauth import basic
from support.oidc_provider import OidcUpstream, login_and_consent
from support.sockets import refusing_port
from support.upstream import RecordingUpstream, Reply

#: A platform state that needs encoding in every way: spaces, & = + / ? # %, non-ASCII.
#: Encoded once it reads ``a%20b%26c%3Dd%2Be%2Ff%3Fg%23h%25i%20%C3%A9%E2%9C%93``; encoded twice
#: the ``%`` would show up as ``%25``.
TRICKY_STATE = "a b&c=d+e/f?g#h%i é✓"

ALEXA_NA = f"https://pitangui.amazon.com/api/skill/link/{VENDOR}"
ALEXA_EU = f"https://layla.amazon.com/api/skill/link/{VENDOR}"
ALEXA_FE = f"https://alexa.amazon.co.jp/api/skill/link/{VENDOR}"
ALEXA_SPA = f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}"
ALEXA_SPA_EU = f"https://layla.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}"

APP_LINK_PATTERN = "https://app.example.com/alexa/link/*"
APP_LINK = "https://app.example.com/alexa/link/Xy7-k_9"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def once(value: str) -> str:
    """``value`` percent-encoded exactly once, as a query or fragment parameter value."""
    return quote(value, safe="")


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def code_form(code: str, redirect_uri: str = ALEXA_REDIRECT, **extra: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **extra}


def refresh_form(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


async def open_callback(browser: aiohttp.ClientSession, callback: yarl.URL | str) -> tuple[int, Any, str]:
    """The browser arriving at the gateway's callback: (status, headers, body), no redirect followed."""
    async with browser.get(yarl.URL(str(callback), encoded=True), allow_redirects=False) as response:
        return response.status, response.headers, await response.text()


async def to_callback(browser: aiohttp.ClientSession, gateway: Gateway, **params: str | None) -> yarl.URL:
    """/authorize, the upstream's login and consent, up to (not into) the gateway's callback."""
    return await login_and_consent(browser, gateway.authorize_url("oidc", **params), stop_at_prefix=gateway.endpoint("callback"))


def assert_html_page(status: int, headers: Any, body: str, *, says: str) -> None:
    """A clear HTML page: a 4xx, no redirect, and a message a user can act on."""
    assert 400 <= status < 500, (status, body)
    assert "Location" not in headers, headers.get("Location")
    assert headers["Content-Type"].startswith("text/html")
    assert says in body, body


def code_redirect(location: str, redirect_uri: str, state: str) -> str:
    """The sealed code from ``<redirect_uri>?code=<code>&state=<state once encoded>``, checked exactly."""
    match = re.fullmatch(re.escape(redirect_uri) + r"([?&])code=([^&#]+)&state=([^&#]*)", location)
    assert match, location
    assert match.group(1) == ("&" if "?" in redirect_uri else "?")
    assert match.group(3) == once(state), location
    return unquote(match.group(2))


# ---------------------------------------------------------------------------------------------
# upstream token endpoints that record requests and answer as a test says
# ---------------------------------------------------------------------------------------------

#: ``await token_server(reply)``: a recording upstream whose token endpoint answers ``reply``.
TokenServer = Callable[[Reply], Awaitable[RecordingUpstream]]


@pytest.fixture
async def token_server() -> AsyncIterator[TokenServer]:
    """Start recording upstreams on 127.0.0.1 (its token endpoint: ``.token_endpoint``)."""
    started: list[RecordingUpstream] = []

    async def start(reply: Reply) -> RecordingUpstream:
        upstream = await RecordingUpstream().start()
        started.append(upstream)
        upstream.fault = reply
        return upstream

    yield start
    for upstream in started:
        await upstream.stop()


# =============================================================================================
# 1. Implicit mode
# =============================================================================================

IMPLICIT = "grant: implicit\n"


@pytest.mark.parametrize(
    "redirect_uri",
    [ALEXA_NA, ALEXA_EU, ALEXA_FE, ALEXA_SPA, ALEXA_SPA_EU],
    ids=["NA", "EU", "FE", "spa-NA", "spa-EU"],
)
async def test_implicit_token_in_the_fragment_of_the_redirect_uri(
    make_gateway: GatewayFactory,
    browser: aiohttp.ClientSession,
    upstream: OidcUpstream,
    caplog: pytest.LogCaptureFixture,
    redirect_uri: str,
) -> None:
    """An Alexa skill configured for the implicit grant (``response_type=token``): the gateway
    redeems the upstream code itself and sends the browser to *the redirect URI Alexa sent*, the
    ``?vendorId=`` of the /spa/ form byte for byte, with the token in the fragment — the state
    encoded once, nothing in the query, ``Referrer-Policy: no-referrer`` — and the token works
    at the upstream. Neither the token nor the upstream code ever reaches a log."""
    caplog.set_level(logging.DEBUG)
    gateway = await make_gateway(extra=IMPLICIT)
    callback = await to_callback(browser, gateway, redirect_uri=redirect_uri, response_type="token", state=TRICKY_STATE)
    upstream_code = query_of(callback)["code"]

    status, headers, _ = await open_callback(browser, callback)
    assert status == 302
    location = headers["Location"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"

    token = re.search(r"[#&]access_token=([^&]*)", location)
    expires_in = re.search(r"[#&]expires_in=([^&]*)", location)
    assert token and expires_in, location
    assert re.fullmatch(r"[1-9][0-9]*", expires_in.group(1)), location  # an integer, as Alexa needs
    assert 3000 < int(expires_in.group(1)) <= 3600  # the upstream's access token lifetime
    expected = (
        redirect_uri
        + "#state=" + once(TRICKY_STATE)
        + "&access_token=" + token.group(1)
        + "&token_type=Bearer"
        + "&expires_in=" + expires_in.group(1)
    )
    # RFC 6749 §4.2.2: the granted scope may follow; oidc-provider grants what was asked.
    assert location == expected + "&scope=" + once("openid profile")

    parts = urlsplit(location)
    assert parts.query == ("vendorId=" + VENDOR if "?" in redirect_uri else "")
    assert "access_token" not in parts.query
    assert dict(parse_qsl(parts.fragment))["state"] == TRICKY_STATE  # decoding once gives it back

    access_token = unquote(token.group(1))
    async with aiohttp.ClientSession() as client:
        async with client.get(upstream.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["sub"] == "alice"

    # The message and every extra= field of every record (the request line's fields included).
    messages = [record.getMessage() + repr(vars(record)) for record in caplog.records]
    assert any("/oidc/callback" in message for message in messages), "the access log was not captured"
    for message in messages:
        assert access_token not in message
        assert upstream_code not in message


async def test_implicit_user_denies_goes_back_in_the_fragment(make_gateway: GatewayFactory, browser: aiohttp.ClientSession) -> None:
    """The user presses Cancel at the upstream in an implicit flow: Alexa's /spa/ page gets
    ``#state=…&error=access_denied`` in the fragment, its ``?vendorId=`` untouched."""
    gateway = await make_gateway(extra=IMPLICIT)
    landing = await login_and_consent(
        browser,
        gateway.authorize_url(redirect_uri=ALEXA_SPA, response_type="token", state=TRICKY_STATE),
        stop_at_prefix="https://pitangui.amazon.com/",
        deny=True,
    )
    location = str(landing)
    assert location.startswith(ALEXA_SPA + "#state=" + once(TRICKY_STATE) + "&error=access_denied"), location
    assert urlsplit(location).query == "vendorId=" + VENDOR


async def test_implicit_mapping_refuses_response_type_code_in_the_fragment(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession
) -> None:
    """A skill misconfigured for the code grant in front of an implicit mapping: an error
    redirect (the redirect URI is valid) in the fragment, with the state, and no upstream visit."""
    gateway = await make_gateway(extra=IMPLICIT)
    async with browser.get(
        gateway.authorize_url(redirect_uri=ALEXA_SPA, response_type="code", state=TRICKY_STATE), allow_redirects=False
    ) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location == (
        ALEXA_SPA
        + "#error=unsupported_response_type&error_description="
        + once("this provider answers response_type=token")
        + "&state=" + once(TRICKY_STATE)
    )


async def test_implicit_upstream_timeout_is_an_error_redirect_not_a_hang(
    make_gateway: GatewayFactory,
    browser: aiohttp.ClientSession,
    token_server: TokenServer,
) -> None:
    """Implicit mode with an upstream token endpoint that hangs: the browser is sent back
    promptly with ``error=temporarily_unavailable`` and the state, in the fragment."""
    slow = await token_server(Reply(body={"access_token": "late", "token_type": "Bearer"}, delay=2.0))
    gateway = await make_gateway(extra=IMPLICIT, token_url=slow.token_endpoint, token_extra="timeout: 0.5")
    callback = await to_callback(browser, gateway, redirect_uri=ALEXA_SPA, response_type="token", state="s1")
    started = time.monotonic()
    status, headers, _ = await open_callback(browser, callback)
    assert time.monotonic() - started < 1.5
    assert status == 302
    location = headers["Location"]
    assert location.startswith(ALEXA_SPA + "#state=s1&error=temporarily_unavailable"), location
    assert "late" not in location
    assert len(slow.token_requests) == 1


@pytest.mark.parametrize(
    "redirect_uri",
    [ALEXA_NA, ALEXA_EU, ALEXA_FE, ALEXA_SPA, ALEXA_SPA_EU],
    ids=["NA", "EU", "FE", "spa-NA", "spa-EU"],
)
async def test_code_grant_location_is_exact_for_every_alexa_redirect_uri(
    gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession, redirect_uri: str
) -> None:
    """The code grant's counterpart: ``<redirect_uri>?code=…&state=…`` (``&code=`` after the /spa/
    form's ``?vendorId=``), the state encoded exactly once, and the code redeemable there."""
    callback = await to_callback(browser, gateway, redirect_uri=redirect_uri, state=TRICKY_STATE)
    status, headers, _ = await open_callback(browser, callback)
    assert status == 302
    assert headers["Referrer-Policy"] == "no-referrer"
    code = code_redirect(headers["Location"], redirect_uri, TRICKY_STATE)
    answer = await post_token(platform, gateway.endpoint("token"), code_form(code, redirect_uri))
    assert answer.status == 200, answer.body


# =============================================================================================
# 2. PKCE
# =============================================================================================


@pytest.mark.parametrize("method", ["S256", "plain", None], ids=["S256", "plain", "method-omitted"])
async def test_platform_pkce_verifier_is_checked_at_token(
    gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession, method: str | None
) -> None:
    """A skill with PKCE enabled (RFC 7636; no method means ``plain``, §4.3): the code_verifier
    is checked at /token before the upstream is asked — a wrong one is invalid_grant, a malformed
    or missing one invalid_request — and the right one then still redeems the code."""
    verifier = secrets.token_urlsafe(48)
    challenge = s256(verifier) if method == "S256" else verifier
    back = await link(browser, gateway, code_challenge=challenge, code_challenge_method=method)
    code = back["code"]

    wrong = await post_token(platform, gateway.endpoint("token"), code_form(code, code_verifier=secrets.token_urlsafe(48)))
    assert (wrong.status, wrong.body["error"]) == (400, "invalid_grant"), wrong.body
    assert wrong.headers["Cache-Control"] == "no-store"
    if method == "S256":  # a downgrade: the intercepted challenge presented as a plain verifier
        downgrade = await post_token(platform, gateway.endpoint("token"), code_form(code, code_verifier=challenge))
        assert (downgrade.status, downgrade.body["error"]) == (400, "invalid_grant"), downgrade.body

    for malformed in ("too-short", verifier + "!", "x" * 129, verifier[:42]):
        bad = await post_token(platform, gateway.endpoint("token"), code_form(code, code_verifier=malformed))
        assert (bad.status, bad.body["error"]) == (400, "invalid_request"), (malformed, bad.body)

    missing = await post_token(platform, gateway.endpoint("token"), code_form(code))
    assert (missing.status, missing.body["error"]) == (400, "invalid_request"), missing.body

    right = await post_token(platform, gateway.endpoint("token"), code_form(code, code_verifier=verifier))
    assert right.status == 200, right.body
    assert right.body["access_token"] and right.body["refresh_token"]


async def test_code_verifier_for_a_code_issued_without_challenge_is_refused(
    gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """PKCE downgrade (RFC 9700 §2.1.1): an attacker strips code_challenge from the authorize
    request, then redeems with any verifier. A token request with a code_verifier is accepted
    only if the authorization request had a code_challenge."""
    back = await link(browser, gateway)
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"], code_verifier=secrets.token_urlsafe(48)))
    assert (answer.status, answer.body["error"]) == (400, "invalid_grant"), answer.body


@pytest.mark.parametrize(
    ("challenge", "method"),
    [("A" * 42, "S256"), ("A" * 43 + "=", "S256"), ("A" * 43, "S512"), ("short", "plain"), ("A" * 129, "plain")],
)
async def test_malformed_code_challenge_is_an_error_redirect(
    gateway: Gateway, browser: aiohttp.ClientSession, challenge: str, method: str
) -> None:
    """RFC 7636 §4.4.1: a malformed challenge or unknown method comes back to the (valid)
    redirect URI as invalid_request with the state; the user never reaches the upstream."""
    url = gateway.authorize_url(state=TRICKY_STATE, code_challenge=challenge, code_challenge_method=method)
    async with browser.get(url, allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(ALEXA_REDIRECT + "?error=invalid_request&"), location
    assert location.endswith("&state=" + once(TRICKY_STATE)), location
    assert "code=" not in location


async def test_platform_pkce_required_by_the_mapping(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """``platform.pkce: required``: an authorize request without code_challenge is sent back
    with invalid_request and the state; with one, the link completes."""
    gateway = await make_gateway(platform_extra="pkce: required")
    async with browser.get(gateway.authorize_url(state=TRICKY_STATE), allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(ALEXA_REDIRECT + "?error=invalid_request&error_description="), location
    assert location.endswith("&state=" + once(TRICKY_STATE)), location
    assert query_of(location)["error_description"] == "code_challenge is required (RFC 7636)"

    verifier = secrets.token_urlsafe(32)
    back = await link(browser, gateway, code_challenge=s256(verifier), code_challenge_method="S256")
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"], code_verifier=verifier))
    assert answer.status == 200, answer.body


@pytest.mark.oidc_provider(pkce_required=True)
async def test_pkce_on_both_sides_against_an_upstream_that_requires_it(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """An upstream that requires PKCE (X/Twitter, some Zoom apps) and a skill that uses PKCE
    too: the gateway sends its own S256 challenge upstream and its own verifier at the exchange,
    independently of the platform's."""
    gateway = await make_gateway(authorize_extra="pkce: S256")
    platform_verifier = secrets.token_urlsafe(48)
    platform_challenge = s256(platform_verifier)
    url = gateway.authorize_url(code_challenge=platform_challenge, code_challenge_method="S256")
    async with browser.get(url, allow_redirects=False) as response:
        assert response.status == 302
        upstream_query = query_of(response.headers["Location"])
    assert upstream_query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", upstream_query["code_challenge"])
    assert upstream_query["code_challenge"] != platform_challenge  # the gateway's own pair

    back = await link(browser, gateway, code_challenge=platform_challenge, code_challenge_method="S256")
    answer = await post_token(platform, gateway.endpoint("token"), code_form(back["code"], code_verifier=platform_verifier))
    assert answer.status == 200, answer.body
    refreshed = await post_token(platform, gateway.endpoint("token"), refresh_form(answer.body["refresh_token"]))
    assert refreshed.status == 200, refreshed.body


@pytest.mark.oidc_provider(pkce_required=True)
async def test_upstream_requiring_pkce_without_the_mapping_setting(
    gateway: Gateway, browser: aiohttp.ClientSession
) -> None:
    """A mapping that forgot ``upstream.authorize.pkce`` in front of an upstream that requires
    it: the upstream refuses at once, and the gateway passes the refusal on to the validated
    redirect URI with the platform's state (no page, no hang, no code) — as ``server_error``,
    since it was the gateway's request, not the platform's, that the upstream found wrong."""
    landing = await login_and_consent(
        browser, gateway.authorize_url(state=TRICKY_STATE), stop_at_prefix="https://pitangui.amazon.com/"
    )
    location = str(landing)
    assert location.startswith(ALEXA_REDIRECT + "?error=server_error&"), location
    assert location.endswith("&state=" + once(TRICKY_STATE)), location
    params = query_of(location)
    assert "PKCE" in params["error_description"], params
    assert "code" not in params


# =============================================================================================
# 3. Refresh
# =============================================================================================


@pytest.mark.oidc_provider(rotate_refresh_token=True)
async def test_rotated_refresh_token_is_passed_on(
    gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """An upstream that rotates refresh tokens (Strava, Zoom, SmartThings): every refresh
    answer carries the new one, and the spent one is refused as invalid_grant (so Alexa, which
    stores what it is given, never holds a dead token while a live one exists)."""
    back = await link(browser, gateway)
    first = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]))
    assert first.status == 200, first.body
    r1 = first.body["refresh_token"]

    second = await post_token(platform, gateway.endpoint("token"), refresh_form(r1))
    assert second.status == 200, second.body
    r2 = second.body["refresh_token"]
    assert r2 != r1
    assert isinstance(second.body["expires_in"], int)

    third = await post_token(platform, gateway.endpoint("token"), refresh_form(r2))
    assert third.status == 200, third.body
    r3 = third.body["refresh_token"]
    assert r3 not in (r1, r2)

    # Within the grace window the spent token gets its own answer again (gateway/oauth/refresh.py);
    # after it, the upstream's invalid_grant (test_refresh_grace.py).
    replay = await post_token(platform, gateway.endpoint("token"), refresh_form(r1))
    assert (replay.status, replay.body) == (200, second.body), replay.body
    assert replay.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("keep", [False, True])
async def test_refresh_answer_without_refresh_token(
    make_gateway: GatewayFactory,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
    keep: bool,
) -> None:
    """Spotify-style: the refresh answer has no refresh_token. The gateway answers without one
    too (Alexa then keeps the old one), unless the mapping says
    ``upstream.token.refresh.keep_refresh_token: true``: then it hands the sent one back."""
    upstream = await token_server(Reply(body={"access_token": "at-2", "token_type": "bearer", "expires_in": 3600}))
    gateway = await make_gateway(
        token_url=upstream.token_endpoint, token_extra="refresh:\n  keep_refresh_token: true\n" if keep else ""
    )
    answer = await post_token(platform, gateway.endpoint("token"), refresh_form("rt-1"))
    assert answer.status == 200, answer.body
    expected: dict[str, Any] = {"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600}
    if keep:
        expected["refresh_token"] = "rt-1"
    assert answer.body == expected
    assert upstream.token_requests[0].form["refresh_token"] == "rt-1"


@pytest.mark.parametrize(
    ("upstream_body", "default", "expected"),
    [
        ({}, None, 3600),  # no lifetime at all: the gateway's default
        ({}, 1234, 1234),  # ... or the mapping's upstream.answer.expires_in_default
        ({"expires_in": "7200"}, None, 7200),  # Login with Amazon's string
        ({"expires_in": 7200.9}, None, 7200),
        ({"expires": "5183999"}, None, 5183999),  # Facebook's name
    ],
    ids=["no-lifetime", "mapping-default", "string", "float", "expires"],
)
async def test_refresh_answer_always_has_an_integer_expires_in(
    make_gateway: GatewayFactory,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
    upstream_body: dict[str, Any],
    default: int | None,
    expected: int,
) -> None:
    """Alexa decides when to refresh from ``expires_in``; a refresh answer without it leaves
    the link to die. The gateway always answers a JSON integer."""
    upstream = await token_server(Reply(body={"access_token": "at-2", "refresh_token": "rt-2", **upstream_body}))
    gateway = await make_gateway(
        token_url=upstream.token_endpoint,
        upstream_extra=f"answer:\n  expires_in_default: {default}\n" if default is not None else "",
    )
    async with platform.post(
        gateway.endpoint("token"), data=urlencode(refresh_form("rt-1")), headers={"Authorization": PLATFORM_BASIC}
    ) as response:
        assert response.status == 200
        text = await response.text()
    assert re.search(r'"expires_in":\s*' + str(expected) + r"[,}]", text), text  # 7200, not 7200.0 or "7200"
    body = json.loads(text)
    assert type(body["expires_in"]) is int and body["expires_in"] == expected
    assert body["refresh_token"] == "rt-2"


async def test_refresh_extras_reach_the_upstream(
    make_gateway: GatewayFactory,
    browser: aiohttp.ClientSession,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
) -> None:
    """Reddit wants ``redirect_uri`` on refresh; SmartThings wants the client in the body on
    refresh. ``upstream.token.refresh`` overrides reach the upstream on refresh only: the code
    exchange still uses HTTP Basic and the standard parameters."""
    upstream = await token_server(
        Reply(body={"access_token": "at", "refresh_token": "rt-2", "token_type": "bearer", "expires_in": 60})
    )
    gateway = await make_gateway(
        token_url=upstream.token_endpoint,
        token_extra="""\
            refresh:
              client_auth: body
              params:
                add:
                  redirect_uri: "{redirect_uri}"
            """,
    )
    callback_url = gateway.endpoint("callback")
    back = await link(browser, gateway)
    exchanged = await post_token(platform, gateway.endpoint("token"), code_form(back["code"]))
    assert exchanged.status == 200, exchanged.body
    refreshed = await post_token(platform, gateway.endpoint("token"), refresh_form("rt-1"))
    assert refreshed.status == 200, refreshed.body

    code_request, refresh_request = upstream.token_requests
    assert code_request.method == "POST"
    assert code_request.headers["authorization"] == basic(UPSTREAM_ID, UPSTREAM_SECRET)
    assert code_request.form.keys() == {"grant_type", "code", "redirect_uri"}
    assert code_request.form["grant_type"] == "authorization_code"
    assert code_request.form["redirect_uri"] == callback_url

    assert refresh_request.method == "POST"
    assert "authorization" not in refresh_request.headers
    assert refresh_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert refresh_request.query == {}
    assert refresh_request.form == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "client_id": UPSTREAM_ID,
        "client_secret": UPSTREAM_SECRET,
        "redirect_uri": callback_url,
    }


# =============================================================================================
# 4. Alexa app-to-app linking
# =============================================================================================

APP_LINK_MAPPING = f'redirect_uris: ["{APP_LINK_PATTERN}"]\n'


async def test_app_to_app_universal_link_redirect_uri(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """Alexa app-to-app linking: the skill's own app hands the gateway its https universal link
    as redirect URI. Declared in the mapping, it is accepted alongside the alexa profile, the
    code comes back to it, and the code is bound to it at /token."""
    gateway = await make_gateway(platform_extra=APP_LINK_MAPPING)
    callback = await to_callback(browser, gateway, redirect_uri=APP_LINK, state=TRICKY_STATE)
    status, headers, _ = await open_callback(browser, callback)
    assert status == 302
    code = code_redirect(headers["Location"], APP_LINK, TRICKY_STATE)

    elsewhere = await post_token(platform, gateway.endpoint("token"), code_form(code, ALEXA_REDIRECT))
    assert (elsewhere.status, elsewhere.body["error"]) == (400, "invalid_grant")
    answer = await post_token(platform, gateway.endpoint("token"), code_form(code, APP_LINK))
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example.com/alexa/link/",  # empty segment
        "https://app.example.com/alexa/link",
        "https://app.example.com/alexa/link/a/b",  # two segments for one *
        "https://app.example.com/alexa/link/abc/",
        "https://app.example.com/alexa/link/abc?next=https://evil.example",
        "https://app.example.com/alexa/link/abc#frag",
        "http://app.example.com/alexa/link/abc",
        "https://app.example.com:8443/alexa/link/abc",
        "https://app.example.com.evil.example/alexa/link/abc",
        "https://app.example.com@evil.example/alexa/link/abc",
        "https://evil.example/?https://app.example.com/alexa/link/abc",
        "https://APP.example.com/alexa/link/abc",
        "https://app.example.com/alexa/link/%2e%2e",
        "https://app.example.com/alexa/link/a%2Fb",
        "https://app.example.com/Alexa/link/abc",
        "https://app.example.com/alexa/link/abc\\@evil.example",
    ],
)
async def test_app_link_near_misses_get_a_page(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession, redirect_uri: str
) -> None:
    """Exact matching (RFC 9700 §4.1): anything but one safe path segment for the ``*`` is
    refused with an HTML page, never a redirect."""
    gateway = await make_gateway(platform_extra=APP_LINK_MAPPING)
    async with browser.get(gateway.authorize_url(redirect_uri=redirect_uri), allow_redirects=False) as response:
        assert_html_page(response.status, response.headers, await response.text(), says="redirect_uri")


@pytest.mark.parametrize("segment", ["..", "."])
async def test_app_link_star_does_not_match_a_dot_segment(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession, segment: str
) -> None:
    """A ``*`` stands for one path segment; ``.`` and ``..`` are not segments but path
    navigation (RFC 3986 §5.2.4): ``…/alexa/link/..`` is really ``…/alexa/``, outside the pattern."""
    gateway = await make_gateway(platform_extra=APP_LINK_MAPPING)
    url = gateway.authorize_url(redirect_uri=f"https://app.example.com/alexa/link/{segment}")
    async with browser.get(url, allow_redirects=False) as response:
        assert_html_page(response.status, response.headers, await response.text(), says="redirect_uri")


# =============================================================================================
# 5. The 4.5 s budget
# =============================================================================================


async def test_slow_upstream_token_endpoint_answers_503_within_the_budget(
    make_gateway: GatewayFactory,
    browser: aiohttp.ClientSession,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
) -> None:
    """An upstream token endpoint that takes 2 s, behind ``upstream.token.timeout: 0.5``:
    Alexa (which gives up after 4.5 s) gets a prompt 503 temporarily_unavailable — not
    invalid_grant, which would unlink — and the upstream saw exactly one request (no retry: a
    retried code exchange could spend the code twice). Same for refresh."""
    slow = await token_server(Reply(body={"access_token": "late", "token_type": "Bearer"}, delay=2.0))
    gateway = await make_gateway(token_url=slow.token_endpoint, token_extra="timeout: 0.5")
    back = await link(browser, gateway)

    for form in (code_form(back["code"]), refresh_form("rt-1")):
        before = len(slow.token_requests)
        answer = await post_token(platform, gateway.endpoint("token"), form)
        assert 0.45 <= answer.elapsed < 1.5, answer.elapsed
        assert answer.status == 503, answer.body
        assert answer.body["error"] == "temporarily_unavailable"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Pragma"] == "no-cache"
        await asyncio.sleep(0.3)  # a retry would have arrived by now
        assert len(slow.token_requests) == before + 1


async def test_upstream_answer_in_several_chunks_is_read_whole(
    make_gateway: GatewayFactory,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
) -> None:
    """A perfectly good token answer that reaches the gateway in two pieces (chunked transfer,
    a large answer with an id_token, a slow network): it is read whole, not cut at the first
    piece."""

    in_two_chunks = Reply(
        body=b'{"access_token": "at-2", "token_type": "bearer", "expires_in": 60, "refresh_token": "rt-2"}',
        content_type="application/json",
        chunks=2,
        chunk_delay=0.05,
    )
    chunked = await token_server(in_two_chunks)
    gateway = await make_gateway(token_url=chunked.token_endpoint)
    answer = await post_token(platform, gateway.endpoint("token"), refresh_form("rt-1"))
    assert answer.status == 200, answer.body
    assert answer.body == {"access_token": "at-2", "token_type": "Bearer", "expires_in": 60, "refresh_token": "rt-2"}


async def test_upstream_stalling_mid_answer_is_cut_at_the_deadline(
    make_gateway: GatewayFactory,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
) -> None:
    """An upstream that sends its headers at once and then stalls in the body: the deadline
    covers the whole exchange, not only the connection and headers."""

    # The headers and the first half of the body at once, then 2 s of nothing before the rest.
    stall = Reply(body=b'{"access_token": "at", "expires_in": 60}', content_type="application/json", chunks=2, stall=2.0)
    stalling = await token_server(stall)
    gateway = await make_gateway(token_url=stalling.token_endpoint, token_extra="timeout: 0.5")
    answer = await post_token(platform, gateway.endpoint("token"), refresh_form("rt-1"))
    assert 0.45 <= answer.elapsed < 1.5, answer.elapsed
    assert (answer.status, answer.body["error"]) == (503, "temporarily_unavailable"), answer.body


async def test_gateway_wide_timeout_keeps_alexa_inside_4_5_seconds(
    make_gateway: GatewayFactory,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
) -> None:
    """A mapping without its own timeout uses gateway.yaml's ``upstream.timeout`` (3 s in these
    tests): an upstream that takes 6 s still gets Alexa its 503 before Alexa's 4.5 s run out."""
    slow = await token_server(Reply(body={"access_token": "late"}, delay=6.0))
    gateway = await make_gateway(token_url=slow.token_endpoint)
    answer = await post_token(platform, gateway.endpoint("token"), refresh_form("rt-1"))
    assert 2.9 <= answer.elapsed < 4.5, answer.elapsed
    assert (answer.status, answer.body["error"]) == (503, "temporarily_unavailable"), answer.body
    assert len(slow.token_requests) == 1


async def test_upstream_refusing_connections_answers_503_at_once(
    make_gateway: GatewayFactory, platform: aiohttp.ClientSession
) -> None:
    """The upstream is down (connection refused): 503 temporarily_unavailable, quickly."""
    gateway = await make_gateway(token_url=f"http://127.0.0.1:{refusing_port()}/oauth/token", token_extra="timeout: 0.5")
    answer = await post_token(platform, gateway.endpoint("token"), refresh_form("rt-1"))
    assert answer.elapsed < 1.0
    assert (answer.status, answer.body["error"]) == (503, "temporarily_unavailable"), answer.body
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
async def test_upstream_outage_page_is_503_never_invalid_grant(
    make_gateway: GatewayFactory,
    browser: aiohttp.ClientSession,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
    status: int,
    grant: str,
) -> None:
    """A proxy in front of the upstream answers an HTML error page: the platform gets 503
    temporarily_unavailable (retry later), never invalid_grant (Google unlinks on that)."""

    outage = Reply(
        status=status,
        body="<html><body><h1>Internal Server Error</h1><p>error=invalid_grant</p></body></html>",
        content_type="text/html",
    )

    broken = await token_server(outage)
    gateway = await make_gateway(token_url=broken.token_endpoint)
    if grant == "authorization_code":
        form = code_form((await link(browser, gateway))["code"])
    else:
        form = refresh_form("rt-1")
    answer = await post_token(platform, gateway.endpoint("token"), form)
    assert (answer.status, answer.body["error"]) == (503, "temporarily_unavailable"), answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    assert len(broken.token_requests) == 1


@pytest.mark.parametrize(
    "body",
    [{"message": "API rate limit exceeded"}, {"error": "rate_limited"}, "<html><h1>429 Too Many Requests</h1></html>"],
    ids=["json-no-error-code", "json-non-rfc-code", "html"],
)
async def test_rate_limited_upstream_is_503_never_invalid_grant(
    make_gateway: GatewayFactory,
    platform: aiohttp.ClientSession,
    token_server: TokenServer,
    body: dict[str, Any] | str,
) -> None:
    """An upstream that rate-limits the gateway (HTTP 429 + Retry-After, as GitHub, Strava and
    Fitbit do) during a refresh: that is "try again later", not a dead grant — invalid_grant
    would make Google unlink and Alexa ask the user to link again."""

    too_many = Reply(
        status=429, body=body, content_type="text/html" if isinstance(body, str) else None, headers={"Retry-After": "30"}
    )

    limited = await token_server(too_many)
    gateway = await make_gateway(token_url=limited.token_endpoint)
    answer = await post_token(platform, gateway.endpoint("token"), refresh_form("rt-1"))
    assert (answer.status, answer.body["error"]) == (503, "temporarily_unavailable"), answer.body


# =============================================================================================
# 6. Mix-up defence (RFC 9207)
# =============================================================================================


@pytest.mark.parametrize("other", ["https://evil.example", "{issuer}/", "{issuer}/other", "{localhost}"])
async def test_callback_from_another_issuer_gets_a_page(
    gateway: Gateway, browser: aiohttp.ClientSession, upstream: OidcUpstream, other: str
) -> None:
    """A mix-up attack: the authorization response names another issuer than the mapping's
    ``upstream.issuer`` (RFC 9207 §2.4, simple string comparison). The user gets a page; no code
    goes to the platform."""
    callback = await to_callback(browser, gateway, state=TRICKY_STATE)
    params = query_of(callback)
    assert params["iss"] == upstream.issuer  # oidc-provider sends iss
    bad_issuer = other.format(issuer=upstream.issuer, localhost=upstream.issuer.replace("127.0.0.1", "localhost"))
    forged = f"{gateway.endpoint('callback')}?{urlencode({**params, 'iss': bad_issuer})}"
    status, headers, body = await open_callback(browser, forged)
    assert_html_page(status, headers, body, says="issuer")
    assert params["code"] not in body


@pytest.mark.parametrize("require_iss", [True, False])
async def test_a_callback_without_iss(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession, require_iss: bool
) -> None:
    """RFC 9207 §2.4: once an upstream is known to send ``iss``, a response without it is refused
    (``require_iss: true``); without that setting a missing ``iss`` is tolerated, as for
    upstreams that predate RFC 9207."""
    gateway = await make_gateway(upstream_extra=f"require_iss: {str(require_iss).lower()}\n")
    callback = await to_callback(browser, gateway, state=TRICKY_STATE)
    params = {key: value for key, value in query_of(callback).items() if key != "iss"}
    stripped = f"{gateway.endpoint('callback')}?{urlencode(params)}"
    if require_iss:
        status, headers, body = await open_callback(browser, stripped)
        assert_html_page(status, headers, body, says="issuer")
    else:
        async with browser.get(stripped, allow_redirects=False) as response:
            assert response.status == 302
            assert "code=" in response.headers["Location"]


# =============================================================================================
# 7. Real browsers
# =============================================================================================


async def test_three_tabs_completed_in_shuffled_order(
    gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """Three link attempts in three tabs of one browser (one per Alexa region), finished in a
    shuffled order: each callback returns its own state to its own redirect URI, and each code
    redeems only with that redirect URI."""
    tabs = [(ALEXA_NA, "tab one"), (ALEXA_EU, "tab two"), (ALEXA_FE, "tab three")]
    callbacks = [await to_callback(browser, gateway, redirect_uri=uri, state=state) for uri, state in tabs]
    for index in (2, 0, 1):  # the last tab first, then the oldest
        uri, state = tabs[index]
        status, headers, body = await open_callback(browser, callbacks[index])
        assert status == 302, body
        code = code_redirect(headers["Location"], uri, state)
        other_uri = tabs[(index + 1) % 3][0]
        crossed = await post_token(platform, gateway.endpoint("token"), code_form(code, other_uri))
        assert (crossed.status, crossed.body["error"]) == (400, "invalid_grant")
        answer = await post_token(platform, gateway.endpoint("token"), code_form(code, uri))
        assert answer.status == 200, answer.body


async def test_abandoned_flow_then_a_new_one(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    """The user gives up on the upstream's login page and starts over from the Alexa app: the
    new attempt completes and returns the new state, not the abandoned one."""
    url: yarl.URL | str = gateway.authorize_url(state="abandoned")
    for _ in range(5):  # the gateway, then the upstream's redirects, up to its login page
        async with browser.get(yarl.URL(str(url), encoded=True), allow_redirects=False) as response:
            if response.status not in (302, 303):
                assert response.status == 200
                assert "<form" in await response.text()
                break
            url = yarl.URL(str(url)).join(yarl.URL(response.headers["Location"], encoded=True))
    else:
        pytest.fail("never reached the upstream's login page")

    back = await link(browser, gateway, state="fresh")
    assert back["state"] == "fresh"
    assert "code" in back


async def test_back_and_retry_with_the_same_state(
    gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """The user presses back and the Alexa app sends the same authorize request again (same
    state): the second attempt completes; the first, never finished, does not get in its way."""
    async with browser.get(gateway.authorize_url(state=TRICKY_STATE), allow_redirects=False) as response:
        assert response.status == 302
        first_nonce = query_of(response.headers["Location"])["state"]

    callback = await to_callback(browser, gateway, state=TRICKY_STATE)
    assert query_of(callback)["state"] != first_nonce  # a fresh flow, not the first one reused
    status, headers, body = await open_callback(browser, callback)
    assert status == 302, body
    code = code_redirect(headers["Location"], ALEXA_REDIRECT, TRICKY_STATE)
    answer = await post_token(platform, gateway.endpoint("token"), code_form(code))
    assert answer.status == 200, answer.body


async def test_flow_cookie_lost_before_the_callback(gateway: Gateway, browser: aiohttp.ClientSession) -> None:
    """The flow cookie expired (or a privacy setting dropped it) while the user was at the
    upstream: a page that says what happened, no redirect, no 500."""
    callback = await to_callback(browser, gateway)
    cookie_name = gateway.config.cookie.name
    assert any(cookie.key == cookie_name for cookie in browser.cookie_jar)
    browser.cookie_jar.clear(lambda cookie: cookie.key == cookie_name)
    status, headers, body = await open_callback(browser, callback)
    assert_html_page(status, headers, body, says="start linking your account again")
    assert "cookie" in body


async def test_callback_opened_twice_while_another_flow_waits(
    gateway: Gateway, browser: aiohttp.ClientSession
) -> None:
    """A reload of the callback page while a second tab is still at the upstream: the reload
    gets the "already used" page, the first redirect carried its own state, and the other tab
    still completes with its own state."""
    first = await to_callback(browser, gateway, state="first tab")
    second = await to_callback(browser, gateway, state="second tab")

    status, headers, body = await open_callback(browser, first)
    assert status == 302, body
    code_redirect(headers["Location"], ALEXA_REDIRECT, "first tab")

    status, headers, body = await open_callback(browser, first)
    assert_html_page(status, headers, body, says="already used")
    assert "first tab" not in body

    status, headers, body = await open_callback(browser, second)
    assert status == 302, body
    code_redirect(headers["Location"], ALEXA_REDIRECT, "second tab")


async def test_implicit_callback_opened_twice_never_sends_a_second_token(
    make_gateway: GatewayFactory, browser: aiohttp.ClientSession
) -> None:
    """Implicit mode, the token page reloaded: the second visit gets the "already used" page and
    no new token (the upstream code is not redeemed twice)."""
    gateway = await make_gateway(extra=IMPLICIT)
    callback = await to_callback(browser, gateway, redirect_uri=ALEXA_SPA, response_type="token")
    status, headers, _ = await open_callback(browser, callback)
    assert status == 302
    assert "#state=alexa-state-123&access_token=" in headers["Location"]
    status, headers, body = await open_callback(browser, callback)
    assert_html_page(status, headers, body, says="already used")
