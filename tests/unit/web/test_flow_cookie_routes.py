"""Where the flow cookie travels (gateway/web/session.py, written back by the browser frame):
``/authorize`` sets it, ``/callback`` reads it and sends it back only when it took a flow, and
no other endpoint reads or writes it — over a real socket, with the app the server runs."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.config.settings import CookieSettings, load_config
from gateway.oauth.seal import build_fernet, generate_key
from gateway.web.app import create_app

MAPPING = """\
platform: {profile: none, redirect_uris: ["https://platform.example/cb"], client_id: platform-client, client_secret: platform-secret-1}
upstream:
  client_id: upstream-client
  client_secret: upstream-secret
  authorize: {url: "https://auth.example/authorize"}
  token: {url: "https://auth.example/token"}
"""
AUTHORIZE = "/p/authorize?" + urllib.parse.urlencode(
    {"client_id": "platform-client", "redirect_uri": "https://platform.example/cb", "response_type": "code", "state": "s1"}
)


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "p.yaml").write_text(MAPPING)
    (tmp_path / "gateway.yaml").write_text(f"keys: ['{generate_key()}']\npublic_url: https://link.example\n")
    server = TestServer(create_app(load_config(tmp_path / "gateway.yaml")), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/"))[:-1]
    finally:
        await server.close()


async def _get(base_url: str, path: str, cookie: str = "", method: str = "GET") -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        async with client.request(method, base_url + path, headers={"Cookie": cookie} if cookie else {}, allow_redirects=False) as answer:
            await answer.read()
            return answer


async def test_only_the_browser_endpoints_read_and_write_the_flow_cookie(base_url: str) -> None:
    started = await _get(base_url, AUTHORIZE)
    assert started.status == 302
    [set_cookie] = started.headers.getall("Set-Cookie")
    cookie = set_cookie.split(";", 1)[0]
    nonce = urllib.parse.parse_qs(urllib.parse.urlsplit(started.headers["Location"]).query)["state"][0]

    for method, path in (("GET", "/healthz"), ("GET", "/p/token"), ("POST", "/p/token"), ("POST", "/p/revoke"),
                         ("GET", "/.well-known/oauth-authorization-server/p")):
        answer = await _get(base_url, path, cookie, method)
        assert "Set-Cookie" not in answer.headers, (method, path, answer.status)

    # A callback that names no flow only reads the cookie: nothing is sent back.
    unnamed = await _get(base_url, "/p/callback?code=c", cookie)
    assert unnamed.status == 400 and "Set-Cookie" not in unnamed.headers
    # An unknown provider's callback never opens it.
    assert "Set-Cookie" not in (await _get(base_url, f"/nope/callback?code=c&state={nonce}", cookie)).headers

    # The callback that completes the flow takes it out of the cookie, and says so.
    completed = await _get(base_url, f"/p/callback?code=c&state={nonce}", cookie)
    assert completed.status == 302 and completed.headers["Location"].startswith("https://platform.example/cb?code=")
    [rewritten] = completed.headers.getall("Set-Cookie")
    assert rewritten.split(";", 1)[0] != cookie
    # A second /authorize from the same browser keeps the first flow beside the new one: the cookie
    # it sent was read, and the one it gets back is rewritten.
    again = await _get(base_url, AUTHORIZE, cookie)
    assert again.status == 302 and len(again.headers["Set-Cookie"].split(";", 1)[0]) > len(cookie)


async def test_a_flow_the_earlier_version_started_completes_after_an_upgrade(base_url: str, tmp_path: Path) -> None:
    """The earlier version sealed aiohttp-session's envelope with Fernet under the same keys; a
    flow it started must still complete at a callback this version answers."""
    key = load_config(tmp_path / "gateway.yaml").keys[0]
    flow = {"p": "p", "r": "https://platform.example/cb", "t": "code", "s": "s1", "x": int(time.time()) + 300}
    envelope = json.dumps({"created": int(time.time()), "session": {"flows": {"old-nonce": flow}}}, separators=(",", ":"))
    cookie = f"{CookieSettings().name}={build_fernet([key]).encrypt(envelope.encode()).decode()}"
    completed = await _get(base_url, "/p/callback?code=c&state=old-nonce", cookie)
    assert completed.status == 302, await completed.text()
    assert completed.headers["Location"].startswith("https://platform.example/cb?code=") and "state=s1" in completed.headers["Location"]
    rewritten = completed.headers["Set-Cookie"].split(";", 1)[0]
    assert not rewritten.split("=", 1)[1].startswith("gAAAAA")  # written back in this version's seal
    again = await _get(base_url, "/p/callback?code=c&state=old-nonce", rewritten)
    assert again.status == 400 and "already used" in await again.text()


@pytest.mark.parametrize("seal_format", ["aes-gcm", "fernet"])
async def test_seal_format_fernet_seals_what_a_gateway_of_the_earlier_version_opens(tmp_path: Path, seal_format: str) -> None:
    """A rolling upgrade with replicas of both versions: with ``seal_format: fernet`` the flow
    cookie and the platform's code are Fernet tokens, which the earlier version opened with its
    MultiFernet (the cookie as aiohttp-session's JSON envelope, the code as the sealed body)."""
    key = generate_key()
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "p.yaml").write_text(MAPPING)
    (tmp_path / "gateway.yaml").write_text(f"keys: ['{key}']\npublic_url: https://link.example\nseal_format: {seal_format}\n")
    server = TestServer(create_app(load_config(tmp_path / "gateway.yaml")), host="127.0.0.1")
    await server.start_server()
    base_url = str(server.make_url("/"))[:-1]
    try:
        started = await _get(base_url, AUTHORIZE)
        cookie = started.headers["Set-Cookie"].split(";", 1)[0]
        nonce = urllib.parse.parse_qs(urllib.parse.urlsplit(started.headers["Location"]).query)["state"][0]
        completed = await _get(base_url, f"/p/callback?code=up-code&state={nonce}", cookie)
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(completed.headers["Location"]).query)["code"][0]
    finally:
        await server.close()
    earlier = build_fernet([key])  # all the earlier version had to open either
    value = cookie.split("=", 1)[1]
    if seal_format == "aes-gcm":
        assert not value.startswith("gAAAAA") and not code.startswith("gAAAAA")
        return
    envelope = json.loads(earlier.decrypt(value.encode()))
    assert set(envelope) == {"created", "session"} and nonce in envelope["session"]["flows"]
    sealed = json.loads(earlier.decrypt(code.encode()))
    assert sealed["p"] == "code" and sealed["d"]["u"] == "up-code" and sealed["x"] > time.time()
