"""The tenant form end to end (gateway/web/tenant.py): the user names the tenant, the gateway goes there.

Two "tenants" are two loopback hosts (127.0.0.2, 127.0.0.3) of one upstream, so the mapping's
pattern has to say ``allow_private: true``; a second mapping with a loose pattern and no such
flag shows the SSRF rules refusing what the pattern alone would let through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from support.harness import (
    ALEXA_PLATFORM_YAML,
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    Gateway,
    query_of,
    write_gateway_files,
)
from support.sockets import bound_socket, port_of, start_site
from support.upstream import Recorded, RecordingUpstream, Reply

from e2e.test_trace_bounds import UNREADABLE_FORMS, raw_request
from gateway.config.settings import load_config
from gateway.oauth.seal import generate_key
from gateway.web.app import create_app

QUERY = {"client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "alexa-7", "response_type": "code"}


class Fields(HTMLParser):
    """The form's inputs and its action, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.action = ""
        self.labels: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "input" and named.get("name"):
            self.inputs[str(named["name"])] = named.get("value") or ""
        elif tag == "form":
            self.action = named.get("action") or ""
        elif tag == "label":
            self.labels.append(named.get("for") or "")


def _mapping(*, tenant: str, authorize: str, token: str) -> str:
    return (
        ALEXA_PLATFORM_YAML
        + f"tenant: {tenant}\n"
        "upstream:\n"
        "  client_id: up\n"
        "  client_secret: ${UPSTREAM_SECRET}\n"
        f"  authorize: {{url: '{authorize}'}}\n"
        f"  token: {{url: '{token}'}}\n"
    )


@pytest.fixture
async def tenants(tmp_path: Path) -> AsyncIterator[tuple[Gateway, int, RecordingUpstream]]:
    """A gateway with a strict ``shop`` mapping and a loose ``loose`` one; the upstream, whose
    shops are its hosts 127.0.0.2 and 127.0.0.3 (a code is good only at the host that issued it)."""
    upstream = await RecordingUpstream(host="127.0.0.2", hosts=["127.0.0.3"]).start()

    def authorize(request: Recorded) -> Reply:
        back = {"code": f"code@{request.host}", "state": request.query["state"]}
        return Reply(status=302, headers={"Location": f"{request.query['redirect_uri']}?{urlencode(back)}"})

    def token(request: Recorded) -> Reply:
        if request.form.get("code") != f"code@{request.host}":
            return Reply(status=400, body={"error": "invalid_grant"})
        return Reply(body={"access_token": f"at@{request.host}", "expires_in": 60, "refresh_token": "rt"})

    upstream.answer("/authorize", authorize)
    upstream.answer("/token", token)
    port = upstream.port

    strict = _mapping(
        tenant="{name: shop, pattern: '[23]', label: Your shop number, allow_private: true}",
        authorize=f"http://127.0.0.{{shop}}:{port}/authorize",
        token=f"http://127.0.0.{{shop}}:{port}/token",
    )
    loose = _mapping(
        tenant="{name: shop, pattern: '[a-z0-9.:/@\\[\\]-]+', label: Your shop}",
        authorize="https://{shop}/authorize",
        token="https://{shop}/token",
    )
    sock = bound_socket()
    path, env = write_gateway_files(tmp_path, {"shop": strict, "loose": loose}, port=port_of(sock), keys=[generate_key()])
    config = load_config(path, env=env)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    yield Gateway(await start_site(runner, sock=sock), config, runner), port, upstream
    await runner.cleanup()
    await upstream.stop()


def hits(upstream: RecordingUpstream) -> list[str]:
    """The shops (hosts) whose authorize endpoint the browser reached, in order."""
    return [request.host for request in upstream.requests_to("/authorize")]


async def _form(browser: aiohttp.ClientSession, url: str) -> tuple[int, str, Fields]:
    async with browser.get(url, allow_redirects=False) as response:
        text = await response.text()
    fields = Fields()
    fields.feed(text)
    return response.status, text, fields


async def _submit(browser: aiohttp.ClientSession, url: str, fields: Fields, value: str) -> aiohttp.ClientResponse:
    target = urlsplit(url)._replace(query=fields.action.removeprefix("?")).geturl()
    async with browser.post(target, data={**fields.inputs, "tenant": value}, allow_redirects=False) as response:
        await response.read()
        return response


async def test_the_user_names_the_tenant_and_the_link_goes_there(tenants: tuple[Gateway, int, RecordingUpstream]) -> None:
    gateway, _, upstream = tenants
    url = f"{gateway.endpoint('authorize', 'shop')}?{urlencode(QUERY)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        status, page, fields = await _form(browser, url)
        assert status == 200 and "Your shop number" in page and "<script" not in page
        assert fields.labels == ["tenant"] and set(fields.inputs) == {"tenant", "csrf"}

        # A bad value is asked again, with a message tied to the field; nothing goes upstream.
        response = await _submit(browser, url, fields, "4")
        assert response.status == 400
        status, page, fields = await _form(browser, url)  # (a fresh form for the next try)

        response = await _submit(browser, url, fields, "3")
        assert response.status == 302
        location = response.headers["Location"]
        assert location.startswith("http://127.0.0.3:")
        async with browser.get(location, allow_redirects=False) as upstream_answer:
            callback = upstream_answer.headers["Location"]
        async with browser.get(callback, allow_redirects=False) as back:
            landing = back.headers["Location"]
    answer = query_of(landing)
    assert answer["state"] == "alexa-7" and hits(upstream) == ["127.0.0.3"]
    async with aiohttp.ClientSession() as platform:
        form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": ALEXA_REDIRECT}
        async with platform.post(gateway.endpoint("token", "shop"), data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
            body = await response.json()
    assert body["access_token"] == "at@127.0.0.3"  # the token request went to the tenant's host too


async def test_a_bad_value_is_re_asked_with_a_clear_message(tenants: tuple[Gateway, int, RecordingUpstream]) -> None:
    gateway, _, upstream = tenants
    url = f"{gateway.endpoint('authorize', 'shop')}?{urlencode(QUERY)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        _, _, fields = await _form(browser, url)
        target = urlsplit(url)._replace(query=fields.action.removeprefix("?")).geturl()
        async with browser.post(target, data={**fields.inputs, "tenant": "1"}, allow_redirects=False) as response:
            page = await response.text()
    assert response.status == 400
    assert 'role="alert"' in page and "not a valid your shop number" in page
    assert 'aria-invalid="true"' in page and 'value="1"' in page
    assert hits(upstream) == []


@pytest.mark.parametrize(
    "value",
    ["evil.example/x", "a@evil.example", "127.0.0.1", "10.0.0.8", "localhost", "shop.localhost", "[::1]", "evil.example:443/"],
)
async def test_values_pointing_elsewhere_are_refused(tenants: tuple[Gateway, int, RecordingUpstream], value: str) -> None:
    """The loose pattern lets these through; the SSRF rules do not (no allow_private here)."""
    gateway, _, upstream = tenants
    url = f"{gateway.endpoint('authorize', 'loose')}?{urlencode(QUERY)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        _, _, fields = await _form(browser, url)
        target = urlsplit(url)._replace(query=fields.action.removeprefix("?")).geturl()
        async with browser.post(target, data={**fields.inputs, "tenant": value}, allow_redirects=False) as response:
            page = await response.text()
    assert response.status == 400, page
    assert "can not be used" in page or "not a valid" in page
    assert "Location" not in response.headers and hits(upstream) == []


async def test_a_good_dns_name_passes_the_loose_mapping(tenants: tuple[Gateway, int, RecordingUpstream]) -> None:
    gateway, _, _ = tenants
    url = f"{gateway.endpoint('authorize', 'loose')}?{urlencode(QUERY)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        _, _, fields = await _form(browser, url)
        response = await _submit(browser, url, fields, "acme.example.com")
    assert response.status == 302
    assert response.headers["Location"].startswith("https://acme.example.com/authorize?")  # not followed


async def test_a_post_without_the_form_token_is_asked_again(tenants: tuple[Gateway, int, RecordingUpstream]) -> None:
    """A cross-site post (no cookie, no sealed token) never starts a link."""
    gateway, _, upstream = tenants
    url = f"{gateway.endpoint('authorize', 'shop')}?{urlencode(QUERY)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as attacker:
        async with attacker.post(url, data={"tenant": "3", "csrf": "forged"}, allow_redirects=False) as response:
            page = await response.text()
        assert response.status == 400 and "expired or was not sent from this page" in page
        # A genuine token from another browser without its cookie is no better.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as victim:
            _, _, fields = await _form(victim, url)
        async with attacker.post(url, data={**fields.inputs, "tenant": "3"}, allow_redirects=False) as response:
            assert response.status == 400
    assert hits(upstream) == [] and re.search(r"csrf", page)


async def test_a_post_to_a_mapping_without_tenant_is_405(tmp_path: Path) -> None:
    sock = bound_socket()
    port = port_of(sock)
    plain = _mapping(tenant="{name: shop, pattern: 'x', label: L}", authorize="https://a.example/authorize", token="https://a.example/t")
    plain = "\n".join(line for line in plain.splitlines() if not line.startswith("tenant:")) + "\n"
    path, env = write_gateway_files(tmp_path, {"plain": plain}, port=port, keys=[generate_key()])
    runner = web.AppRunner(create_app(load_config(path, env=env)), access_log=None)
    await runner.setup()
    await start_site(runner, sock=sock)
    try:
        async with aiohttp.ClientSession() as browser:
            async with browser.post(f"http://127.0.0.1:{port}/plain/authorize?{urlencode(QUERY)}", data={"tenant": "x"}) as response:
                assert (response.status, response.headers["Allow"]) == (405, "GET")
    finally:
        await runner.cleanup()


async def test_a_form_body_that_cannot_be_read_is_asked_again(tenants: tuple[Gateway, int, RecordingUpstream]) -> None:
    gateway, _, upstream = tenants
    url = f"{gateway.endpoint('authorize', 'shop')}?{urlencode(QUERY)}"
    async with aiohttp.ClientSession() as browser:
        for content_type, body in UNREADABLE_FORMS:
            async with browser.post(url, data=body, headers={"Content-Type": content_type}, allow_redirects=False) as response:
                page = await response.text()
            assert response.status == 400 and "could not be read" in page, (content_type, page)
        gzip = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}
        async with browser.post(url, data=b"tenant=3", headers=gzip, allow_redirects=False) as response:
            assert response.status == 400 and "could not be read" in await response.text()
    assert hits(upstream) == []


async def test_a_form_cookie_that_is_not_utf8_on_a_genuine_post_is_asked_again(tenants: tuple[Gateway, int, RecordingUpstream]) -> None:
    gateway, _, upstream = tenants
    url = f"{gateway.endpoint('authorize', 'shop')}?{urlencode(QUERY)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        _, _, fields = await _form(browser, url)
    body = urlencode({**fields.inputs, "tenant": "3"}).encode()
    head = (f"POST {urlsplit(url).path}{fields.action} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n").encode()
    cookie = f"Cookie: {gateway.config.cookie.name}_form=".encode() + b"\xff\xfe\xc3(\r\n"
    status, answer = await raw_request(gateway, head + cookie, body)
    assert status == 400, answer[:300]
    assert b"expired or was not sent from this page" in answer and hits(upstream) == []
