"""The embedded demo on its own, without the gateway's provider endpoints.

The demo upstream (``/_demo/oauth/``) is driven directly, in the dialect ``demo.yaml`` describes;
the demo platform (``/_demo/platform/``) is driven against a stand-in for the gateway's
``/demo/token`` that forwards to the demo upstream. The end-to-end flow through the real gateway
is tested elsewhere.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient
from support.harness import post_token

from gateway.config import settings as config_module
from gateway.demo import demo_mapping_file, setup_demo
from gateway.demo.platform import shorten
from gateway.oauth import responses as oauth
from gateway.oauth.seal import Sealer, generate_key
from gateway.upstream import answer as answer_module

PUBLIC = "http://localhost:1"
GATEWAY_CALLBACK = f"{PUBLIC}/demo/callback"
TOKEN_FORM = {"client_id": "demo-gateway", "client_secret": "demo-gateway-secret", "action": "requesttoken"}

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
STAND_IN_HTTP: web.AppKey[ClientSession] = web.AppKey("stand_in_http", ClientSession)


@pytest.fixture
def sealer() -> Sealer:
    return Sealer([generate_key()])


@pytest.fixture
async def client(aiohttp_client: ClientFactory, sealer: Sealer) -> Client:
    app = web.Application()
    setup_demo(app, public_url=PUBLIC, sealer=sealer)
    return await aiohttp_client(app)


def hidden_field(page: str, name: str = "request") -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)
    assert match, f"no hidden field {name!r} in page"
    return html.unescape(match.group(1))


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "app_id": "demo-gateway",
        "redirect_uri": GATEWAY_CALLBACK,
        "state": "gw-state-1",
        "scope": "profile,email",
    }
    params.update(overrides)
    return {key: value for key, value in params.items() if value is not None}


async def login(client: Client, *, user: str = "demo", **overrides: str) -> str:
    """Authorize and sign in; the sealed field of the consent page."""
    page = await client.get("/_demo/oauth/authorize", params=authorize_params(**overrides))
    assert page.status == 200, await page.text()
    sealed = hidden_field(await page.text())
    consent = await client.post("/_demo/oauth/login", data={"request": sealed, "username": user, "password": ""})
    assert consent.status == 200
    return hidden_field(await consent.text())


async def get_code(client: Client, **overrides: str) -> str:
    sealed = await login(client, **overrides)
    answer = await client.post("/_demo/oauth/consent", data={"request": sealed, "decision": "allow"}, allow_redirects=False)
    assert answer.status == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return query["code"][0]


async def demo_token(client: Client, **fields: str) -> tuple[int, dict[str, Any]]:
    """The gateway's token request to the demo upstream, its credentials in the body as ``demo.yaml`` says."""
    answer = await post_token(client.session, str(client.make_url("/_demo/oauth/token")), {**TOKEN_FORM, **fields}, auth=None)
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.status, answer.body


async def exchange(client: Client, code: str) -> dict[str, Any]:
    status, body = await demo_token(client, grant_type="authorization_code", code=code, redirect_uri=GATEWAY_CALLBACK)
    assert status == 200 and body["status"] == 0, body
    token: dict[str, Any] = body["body"]
    return token


# --- the browser leg ---------------------------------------------------------------------------


async def test_authorize_shows_a_demo_login_page_with_sealed_state(client: Client) -> None:
    page = await client.get("/_demo/oauth/authorize", params=authorize_params())
    text = await page.text()
    assert page.status == 200
    assert "DEMO" in text and 'value="demo"' in text
    assert 'action="http://localhost:1/_demo/oauth/login"' in text
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "gw-state-1" not in text  # the pending request is sealed, not echoed


async def test_login_and_consent_give_a_code_for_the_callback(client: Client, sealer: Sealer) -> None:
    sealed = await login(client, user="alice")
    answer = await client.post("/_demo/oauth/consent", data={"request": sealed, "decision": "allow"}, allow_redirects=False)
    assert answer.status == 302
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    location = answer.headers["Location"]
    assert location.startswith(GATEWAY_CALLBACK + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["gw-state-1"]
    grant = sealer.open("demo-code", query["code"][0])
    assert grant == {"user": "alice", "scope": ["profile", "email"], "redirect_uri": GATEWAY_CALLBACK}


async def test_consent_page_lists_the_scopes_and_escapes_the_user(client: Client) -> None:
    page = await client.get("/_demo/oauth/authorize", params=authorize_params(scope="profile email"))
    sealed = hidden_field(await page.text())
    consent = await client.post("/_demo/oauth/login", data={"request": sealed, "username": "<b>x</b>"})
    text = await consent.text()
    assert "<code>profile</code>" in text and "<code>email</code>" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert 'value="allow"' in text and 'value="deny"' in text


async def test_deny_redirects_with_access_denied(client: Client) -> None:
    sealed = await login(client)
    answer = await client.post("/_demo/oauth/consent", data={"request": sealed, "decision": "deny"}, allow_redirects=False)
    assert answer.status == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["gw-state-1"]
    assert query["error_description"]
    assert "code" not in query


@pytest.mark.parametrize(
    "overrides",
    [
        {"app_id": "someone-else"},
        {"app_id": None},
        {"redirect_uri": "http://evil.example/demo/callback"},
        {"redirect_uri": GATEWAY_CALLBACK + "?x=1"},
        {"redirect_uri": None},
    ],
)
async def test_unknown_client_or_redirect_uri_gets_a_page_never_a_redirect(client: Client, overrides: dict[str, str]) -> None:
    answer = await client.get("/_demo/oauth/authorize", params=authorize_params(**overrides), allow_redirects=False)
    assert answer.status == 400
    assert "Location" not in answer.headers
    assert answer.content_type == "text/html"
    assert "DEMO" in await answer.text()


async def test_wrong_response_type_goes_back_as_an_error(client: Client) -> None:
    answer = await client.get("/_demo/oauth/authorize", params=authorize_params(response_type="token"), allow_redirects=False)
    assert answer.status == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["unsupported_response_type"]
    assert query["state"] == ["gw-state-1"]


async def test_forged_or_skipped_steps_are_refused(client: Client) -> None:
    page = await client.get("/_demo/oauth/authorize", params=authorize_params())
    login_field = hidden_field(await page.text())
    # The login-step value can not skip the login by going straight to consent.
    skipped = await client.post("/_demo/oauth/consent", data={"request": login_field, "decision": "allow"}, allow_redirects=False)
    assert skipped.status == 400 and "Location" not in skipped.headers
    forged = await client.post("/_demo/oauth/consent", data={"request": "forged", "decision": "allow"}, allow_redirects=False)
    assert forged.status == 400 and "Location" not in forged.headers
    missing = await client.post("/_demo/oauth/login", data={"username": "demo"})
    assert missing.status == 400


async def test_empty_user_name_shows_the_login_page_again(client: Client) -> None:
    page = await client.get("/_demo/oauth/authorize", params=authorize_params())
    sealed = hidden_field(await page.text())
    again = await client.post("/_demo/oauth/login", data={"request": sealed, "username": "  "})
    text = await again.text()
    assert again.status == 200 and "Sign in" in text and "Enter a user name" in text


# --- the token endpoint ------------------------------------------------------------------------


async def test_code_exchange_answers_in_the_nested_dialect(client: Client, sealer: Sealer) -> None:
    body = await exchange(client, await get_code(client))
    assert body["expires"] == "300"
    assert body["scope"] == "profile,email"
    assert body["token_type"] == "bearer"
    assert body["userid"] == "demo"
    assert sealer.open("demo-access", body["access_token"])["user"] == "demo"
    assert sealer.open("demo-refresh", body["refresh_token"])["user"] == "demo"


async def test_access_token_works_at_userinfo(client: Client) -> None:
    body = await exchange(client, await get_code(client))
    answer = await client.get("/_demo/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert answer.status == 200
    assert await answer.json() == {"user": "demo", "scope": "profile,email"}
    for header in ({}, {"Authorization": f"Bearer {body['refresh_token']}"}, {"Authorization": "Basic abc"}):
        refused = await client.get("/_demo/oauth/userinfo", headers=header)
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")


async def test_refresh_rotates_the_refresh_token(client: Client) -> None:
    first = await exchange(client, await get_code(client))
    status, answer = await demo_token(client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert status == 200 and answer["status"] == 0
    second = answer["body"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["userid"] == "demo" and second["expires"] == "300"
    status, again = await demo_token(client, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert again["status"] == 0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "demo-platform"}, "invalid_client"),
        ({"client_secret": ""}, "invalid_client"),
        ({"action": "gettoken"}, "invalid_request"),
        ({"action": ""}, "invalid_request"),
        ({"grant_type": "password"}, "invalid_request"),
        ({"code": ""}, "invalid_request"),
        ({"code": "not-a-sealed-value"}, "invalid_code"),
        ({"redirect_uri": "http://localhost:1/other/callback"}, "invalid_code"),
    ],
)
async def test_code_exchange_errors_come_with_http_200_and_a_status(
    client: Client, fields: dict[str, str], error: str
) -> None:
    form = {"grant_type": "authorization_code", "code": await get_code(client), "redirect_uri": GATEWAY_CALLBACK, **fields}
    status, body = await demo_token(client, **form)
    assert status == 200
    assert body["status"] != 0 and isinstance(body["status"], int)
    assert body["error"] == error
    assert body["message"]
    assert "body" not in body


async def test_client_credentials_in_a_basic_header_are_refused(client: Client) -> None:
    """The dialect wants them in the body: that is what demo.yaml's ``client_auth: body`` is for."""
    basic = "Basic " + base64.b64encode(b"demo-gateway:demo-gateway-secret").decode()
    answer = await client.post(
        "/_demo/oauth/token",
        data={"action": "requesttoken", "grant_type": "authorization_code", "code": await get_code(client)},
        headers={"Authorization": basic},
    )
    assert (await answer.json())["error"] == "invalid_client"


async def test_expired_code_and_swapped_tokens_are_refused(client: Client, sealer: Sealer) -> None:
    grant = {"user": "demo", "scope": ["profile"], "redirect_uri": GATEWAY_CALLBACK}
    stale = sealer.seal("demo-code", grant, ttl=60, now=time.time() - 61)
    _, body = await demo_token(client, grant_type="authorization_code", code=stale, redirect_uri=GATEWAY_CALLBACK)
    assert body["error"] == "invalid_code"

    tokens = await exchange(client, await get_code(client))
    _, body = await demo_token(client, grant_type="refresh_token", refresh_token=tokens["access_token"])
    assert body["error"] == "invalid_refresh_token"
    _, body = await demo_token(client, grant_type="authorization_code", code=tokens["refresh_token"], redirect_uri=GATEWAY_CALLBACK)
    assert body["error"] == "invalid_code"
    _, body = await demo_token(client, grant_type="refresh_token")
    assert body["error"] == "invalid_request"


async def test_answers_normalise_through_the_shipped_demo_mapping(
    client: Client, tmp_path: Path, sealer: Sealer
) -> None:
    """The upstream and demo.yaml agree: its real answers normalise to RFC 6749 ones."""
    (tmp_path / "mappings").mkdir()
    (tmp_path / "gateway.yaml").write_text(f"public_url: {PUBLIC}\nkeys: ['{generate_key()}']\ncookie: {{secure: false}}\ndemo: true\n")
    mapping = config_module.load_config(tmp_path / "gateway.yaml", env={}).providers["demo"]

    async def normalised(**fields: str) -> dict[str, Any]:
        raw = await client.post("/_demo/oauth/token", data={**TOKEN_FORM, **fields})
        upstream_answer = answer_module.UpstreamAnswer(raw.status, raw.content_type, await raw.read())
        return dict(answer_module.normalise(upstream_answer, mapping.answer))

    tokens = await normalised(grant_type="authorization_code", code=await get_code(client), redirect_uri=GATEWAY_CALLBACK)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 300 and tokens["scope"] == "profile email"
    assert sealer.open("demo-refresh", tokens["refresh_token"])["user"] == "demo"
    with pytest.raises(oauth.OAuthError) as caught:
        await normalised(grant_type="refresh_token", refresh_token="bogus")
    assert caught.value.error == "invalid_grant"


def test_the_mapping_file_ships_in_the_package() -> None:
    path = demo_mapping_file()
    assert path.name == "demo.yaml" and path.is_file()
    assert "/_demo/oauth/token" in path.read_text()


# --- the demo platform, against a stand-in for the gateway ------------------------------------


@pytest.fixture
async def platform(aiohttp_client: ClientFactory, unused_tcp_port: int, sealer: Sealer) -> Client:
    """The demo on a real port, with a minimal stand-in for the gateway's ``/demo/token``.

    The stand-in authenticates the platform with HTTP Basic and forwards the code (here the
    upstream's own code) in the upstream's dialect, un-nesting the answer as demo.yaml would.
    """
    port = unused_tcp_port
    public = f"http://127.0.0.1:{port}"
    app = web.Application()
    setup_demo(app, public_url=public, sealer=sealer)

    async def fake_gateway_token(request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(b"demo-platform:demo-platform-secret").decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        form = dict(await request.post())
        form.update(TOKEN_FORM)
        if form["grant_type"] == "authorization_code":
            form["redirect_uri"] = f"{public}/demo/callback"
        upstream = await request.app[STAND_IN_HTTP].post(f"{public}/_demo/oauth/token", data=form)
        answer = await upstream.json()
        if answer["status"] != 0:
            return web.json_response({"error": "invalid_grant", "error_description": answer["message"]}, status=400)
        body = answer["body"]
        return web.json_response(
            {
                "access_token": body["access_token"],
                "refresh_token": body["refresh_token"],
                "token_type": "Bearer",
                "expires_in": int(body["expires"]),
                "scope": body["scope"].replace(",", " "),
            }
        )

    async def demo_client(app: web.Application) -> AsyncIterator[None]:
        async with ClientSession() as session:
            app[STAND_IN_HTTP] = session
            yield

    app.cleanup_ctx.append(demo_client)
    app.router.add_post("/demo/token", fake_gateway_token)
    return await aiohttp_client(app, server_kwargs={"port": port})


async def upstream_code(client: Client) -> str:
    """A code from the demo upstream, for the callback URI of the stand-in gateway."""
    public = str(client.make_url("")).rstrip("/")
    page = await client.get("/_demo/oauth/authorize", params=authorize_params(redirect_uri=f"{public}/demo/callback"))
    sealed = hidden_field(await page.text())
    consent = await client.post("/_demo/oauth/login", data={"request": sealed, "username": "demo"})
    answer = await client.post(
        "/_demo/oauth/consent", data={"request": hidden_field(await consent.text()), "decision": "allow"}, allow_redirects=False
    )
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


async def start(client: Client) -> str:
    answer = await client.get("/_demo/platform/start", allow_redirects=False)
    assert answer.status == 302
    location = urlsplit(answer.headers["Location"])
    assert location.path == "/demo/authorize"
    query = parse_qs(location.query)
    assert query["client_id"] == ["demo-platform"] and query["response_type"] == ["code"]
    assert query["scope"] == ["profile email"]
    assert query["redirect_uri"][0].endswith("/_demo/platform/callback")
    cookie = answer.cookies["demo_platform_state"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    assert cookie["max-age"] == "600" and cookie.value == query["state"][0]
    return query["state"][0]


async def test_root_and_landing_pages(client: Client) -> None:
    root = await client.get("/", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == "/_demo/"
    for path in ("/_demo/", "/_demo/platform/"):
        page = await client.get(path)
        text = await page.text()
        assert page.status == 200 and "This is a DEMO of gateway" in text and "Link account" in text
        assert 'href="http://localhost:1/_demo/platform/start"' in text


async def test_platform_links_refreshes_and_shows_userinfo(platform: Client) -> None:
    state = await start(platform)
    code = await upstream_code(platform)
    linked = await platform.get("/_demo/platform/callback", params={"code": code, "state": state})
    text = await linked.text()
    assert linked.status == 200, text
    assert "Linked!" in text and "DEMO" in text
    assert linked.headers["Cache-Control"] == "no-store" and linked.headers["Referrer-Policy"] == "no-referrer"
    assert "&quot;user&quot;: &quot;demo&quot;" in text  # userinfo answered with the access token
    shown = re.search(r"&quot;access_token&quot;: &quot;([^&…]*)…([^&…]*)&quot;", text)
    assert shown and len(shown.group(1)) == 8 and len(shown.group(2)) == 8
    assert code not in text
    assert "demo_platform_state" not in platform.session.cookie_jar.filter_cookies(platform.make_url("/_demo/platform/"))

    refreshed = await platform.post("/_demo/platform/refresh", data={"refresh": hidden_field(text, "refresh")})
    again = await refreshed.text()
    assert refreshed.status == 200, again
    assert "Refreshed!" in again and "&quot;user&quot;: &quot;demo&quot;" in again
    assert hidden_field(again, "refresh") != hidden_field(text, "refresh")
    refresh_shown = re.compile(r"&quot;refresh_token&quot;: &quot;([^&]*)&quot;")
    assert refresh_shown.findall(again) != refresh_shown.findall(text)  # rotation is visible


def test_shorten_keeps_only_a_few_characters_of_tokens() -> None:
    token = "gAAAAAB" + "x" * 100 + "tail1234"
    shown = shorten({"access_token": token, "refresh_token": "short", "scope": "profile email", "expires_in": 300})
    assert shown == {"access_token": "gAAAAABx…tail1234", "refresh_token": "sh…", "scope": "profile email", "expires_in": 300}


async def test_platform_refuses_a_state_it_did_not_start(platform: Client) -> None:
    await start(platform)
    answer = await platform.get("/_demo/platform/callback", params={"code": await upstream_code(platform), "state": "other"})
    text = await answer.text()
    assert answer.status == 400 and "state" in text and "Try again" in text and "Linked!" not in text


async def test_platform_shows_errors_from_the_gateway(platform: Client) -> None:
    state = await start(platform)
    denied = await platform.get(
        "/_demo/platform/callback", params={"error": "access_denied", "error_description": "<no>", "state": state}
    )
    text = await denied.text()
    assert denied.status == 400 and "access_denied" in text and "&lt;no&gt;" in text and "Try again" in text

    state = await start(platform)
    bad = await platform.get("/_demo/platform/callback", params={"code": "bogus", "state": state})
    text = await bad.text()
    assert bad.status == 502 and "Linking failed" in text and "invalid_grant" in text

    expired = await platform.post("/_demo/platform/refresh", data={"refresh": "tampered"})
    assert expired.status == 400 and "Refresh failed" in await expired.text()


async def test_every_demo_page_says_demo(client: Client) -> None:
    for path in ("/_demo/", "/_demo/oauth/authorize", "/_demo/platform/callback"):
        answer = await client.get(path)
        assert "DEMO" in await answer.text(), path
        assert answer.headers["Cache-Control"] == "no-store"
    assert json.loads(await (await client.post("/_demo/oauth/token")).text())["status"] != 0
