"""``gateway init --discovery`` against a real provider, then a whole link with the files it wrote.

The upstream is the suite's oidc-provider (panva's, from npm), requiring PKCE; ``gateway init``
runs as the operator runs it (``python -m gateway init`` in a fresh folder) on the provider's
discovery document, and writes ``mappings/oidc.yaml`` and a first ``gateway.yaml``. The gateway
then serves those two files, unedited, with only the environment variables init named, and Alexa's
part is played through its code exchange and a refresh.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml
from aiohttp import web
from support.harness import (
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    PLATFORM_SECRET,
    UPSTREAM_ID,
    UPSTREAM_SECRET,
    Gateway,
    link,
    query_of,
)
from support.oauth import basic
from support.oidc_provider import OidcUpstream, login_and_consent
from support.sockets import bound_socket, port_of, start_site

from gateway.config.settings import load_config
from gateway.web.app import create_app


def _init(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "init", *args], cwd=folder, capture_output=True, text=True, timeout=30, check=False
    )


async def _token(platform: aiohttp.ClientSession, gateway: Gateway, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": PLATFORM_BASIC, "Content-Type": "application/x-www-form-urlencoded"}
    async with platform.post(gateway.endpoint("token"), data=urlencode(form), headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.oidc_provider(pkce_required=True)
async def test_init_from_discovery_then_a_whole_link(
    tmp_path: Path,
    gateway_socket: socket.socket,
    upstream: OidcUpstream,
    browser: aiohttp.ClientSession,
    platform: aiohttp.ClientSession,
) -> None:
    port = port_of(gateway_socket)
    done = await asyncio.to_thread(
        _init, tmp_path, "oidc", "--discovery", f"{upstream.issuer}/.well-known/openid-configuration",
        "--public-url", f"http://127.0.0.1:{port}",
    )
    assert done.returncode == 0, done.stderr
    assert f"http://127.0.0.1:{port}/oidc/callback" in done.stdout
    assert "gateway console alexa oidc" in done.stdout and "gateway linktest oidc" in done.stdout
    key = re.search(r"GATEWAY_KEY=(\S+)", done.stdout)
    assert key is not None, done.stdout

    written = yaml.safe_load((tmp_path / "mappings" / "oidc.yaml").read_text())
    up = written["upstream"]
    assert up["authorize"]["url"] == upstream.authorization_endpoint and up["token"]["url"] == upstream.token_endpoint
    assert up["authorize"]["pkce"] == "S256" and up["token"]["client_auth"] == "basic"
    assert up["authorize"]["params"]["add"] == {"prompt": "consent"} and "offline_access" in up["authorize"]["scope"]
    assert up["revoke"]["url"] == upstream.revocation_endpoint and up["issuer"] == upstream.issuer
    config_text = (tmp_path / "gateway.yaml").read_text()
    assert key.group(1) not in config_text  # the sealing key lives in the environment only

    env = {
        "OIDC_CLIENT_ID": UPSTREAM_ID, "OIDC_CLIENT_SECRET": UPSTREAM_SECRET,
        "OIDC_PLATFORM_CLIENT_ID": PLATFORM_ID, "OIDC_PLATFORM_CLIENT_SECRET": PLATFORM_SECRET,
        "GATEWAY_KEY": key.group(1),
    }
    config = load_config(tmp_path / "gateway.yaml", env=env, port=port)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    try:
        gateway = Gateway(await start_site(runner, sock=gateway_socket), config, runner)
        back = await link(browser, gateway)
        status, token = await _token(
            platform, gateway,
            {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": ALEXA_REDIRECT},
        )
        assert status == 200, token
        assert token["token_type"] == "Bearer" and token["access_token"] and token["refresh_token"]
        assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
        status, refreshed = await _token(platform, gateway, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
        assert status == 200, refreshed
        assert refreshed["access_token"] != token["access_token"] and isinstance(refreshed["expires_in"], int)
    finally:
        await runner.cleanup()


async def test_init_names_what_is_wrong_with_a_discovery_url(tmp_path: Path, upstream: OidcUpstream) -> None:
    """An unreachable document, a page that is not JSON, and a document for another issuer: a clear error, no file."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{port_of(closed)}/.well-known/openid-configuration"
    closed.close()
    cases = {
        dead: "can not fetch",
        f"{upstream.issuer}/.well-known/openid-configuration/nothing-here": "HTTP 404",
        "https://": "must be an absolute",
    }
    for url, said in cases.items():
        done = await asyncio.to_thread(_init, tmp_path, "acme", "--discovery", url, "--public-url", "https://link.example")
        assert done.returncode == 2, (url, done.stdout, done.stderr)
        assert "gateway init: --discovery" in done.stderr and said in done.stderr, (url, done.stderr)
        assert not (tmp_path / "mappings" / "acme.yaml").exists()


async def test_a_document_for_another_issuer_or_not_json_is_refused(tmp_path: Path) -> None:
    """A metadata server on 127.0.0.1 that answers a page, and a document naming another issuer
    (the mix-up OpenID Connect Discovery §4.3 and RFC 8414 §3.3 guard against)."""
    app = web.Application()
    sock = bound_socket()
    base = f"http://127.0.0.1:{port_of(sock)}"
    other = {"issuer": "https://other.example", "authorization_endpoint": f"{base}/a", "token_endpoint": f"{base}/t"}

    async def another_issuer(_: web.Request) -> web.Response:
        return web.json_response(other)

    async def a_page(_: web.Request) -> web.Response:
        return web.Response(text="<html>hi</html>", content_type="text/html")

    async def rfc8414(_: web.Request) -> web.Response:
        return web.json_response({**other, "issuer": f"{base}/page"})

    app.router.add_get("/.well-known/openid-configuration", another_issuer)
    app.router.add_get("/page/.well-known/openid-configuration", a_page)
    app.router.add_get("/.well-known/oauth-authorization-server/page", rfc8414)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await start_site(runner, sock=sock)
        for url, said in {
            f"{base}/.well-known/openid-configuration": "is not the issuer it was fetched from",
            f"{base}/page/.well-known/openid-configuration": "did not answer JSON",
        }.items():
            done = await asyncio.to_thread(_init, tmp_path, "acme", "--discovery", url, "--public-url", "https://link.example")
            assert done.returncode == 2 and said in done.stderr, (url, done.stderr)
        # An issuer: its OpenID Connect document is not JSON, its RFC 8414 metadata is the one.
        done = await asyncio.to_thread(_init, tmp_path, "acme", "--discovery", f"{base}/page", "--public-url", "https://link.example")
        assert done.returncode == 0, done.stderr
        text = (tmp_path / "mappings" / "acme.yaml").read_text()
        assert yaml.safe_load(text)["upstream"]["issuer"] == f"{base}/page"
        assert f"# from {base}/.well-known/oauth-authorization-server/page" in text
    finally:
        await runner.cleanup()


async def _dump(response: aiohttp.ClientResponse) -> str:
    """The answer as ``curl -i`` shows it: what an operator saves for ``gateway init --answer``."""
    head = f"HTTP/1.1 {response.status} {response.reason}\nContent-Type: {response.headers['Content-Type']}\n\n"
    return head + await response.text()


async def test_init_from_real_answers_then_a_whole_link(
    tmp_path: Path,
    gateway_socket: socket.socket,
    upstream: OidcUpstream,
    browser: aiohttp.ClientSession,
    platform: aiohttp.ClientSession,
) -> None:
    """The provider's own answers, got by hand (a code exchange, a refresh, the same code again),
    are all init is given besides the two endpoints: the mapping it writes links and refreshes."""
    port = port_of(gateway_socket)
    redirect = f"http://127.0.0.1:{port}/oidc/callback"
    query = {"client_id": UPSTREAM_ID, "response_type": "code", "redirect_uri": redirect, "scope": "openid", "state": "by-hand"}
    landing = await login_and_consent(browser, f"{upstream.authorization_endpoint}?{urlencode(query)}", stop_at_prefix=redirect)
    code = query_of(landing)["code"]
    auth = {"Authorization": basic(UPSTREAM_ID, UPSTREAM_SECRET)}
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    async with platform.post(upstream.token_endpoint, data=exchange, headers=auth) as response:
        (tmp_path / "token.txt").write_text(await _dump(response))
        refresh_token = (await response.json())["refresh_token"]
    async with platform.post(upstream.token_endpoint, data={"grant_type": "refresh_token", "refresh_token": refresh_token}, headers=auth) as response:
        (tmp_path / "refresh.txt").write_text(await _dump(response))
    async with platform.post(upstream.token_endpoint, data=exchange, headers=auth) as response:
        assert response.status == 400
        (tmp_path / "used-code.txt").write_text(await _dump(response))

    done = await asyncio.to_thread(
        _init, tmp_path, "oidc", "--answer", "token.txt", "--refresh-answer", "refresh.txt", "--error-answer", "used-code.txt",
        "--authorize-url", upstream.authorization_endpoint, "--token-url", upstream.token_endpoint,
        "--public-url", f"http://127.0.0.1:{port}",
    )
    assert done.returncode == 0, done.stderr
    assert "its 3 example(s) give what they expect" in done.stdout
    key = re.search(r"GATEWAY_KEY=(\S+)", done.stdout)
    assert key is not None
    env = {
        "OIDC_CLIENT_ID": UPSTREAM_ID, "OIDC_CLIENT_SECRET": UPSTREAM_SECRET,
        "OIDC_PLATFORM_CLIENT_ID": PLATFORM_ID, "OIDC_PLATFORM_CLIENT_SECRET": PLATFORM_SECRET, "GATEWAY_KEY": key.group(1),
    }
    config = load_config(tmp_path / "gateway.yaml", env=env, port=port)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    try:
        gateway = Gateway(await start_site(runner, sock=gateway_socket), config, runner)
        back = await link(browser, gateway)
        status, token = await _token(platform, gateway, {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": ALEXA_REDIRECT})
        assert status == 200 and token["refresh_token"] and token["expires_in"] > 0, token
        status, refreshed = await _token(platform, gateway, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
        assert status == 200 and refreshed["access_token"] != token["access_token"], refreshed
    finally:
        await runner.cleanup()
