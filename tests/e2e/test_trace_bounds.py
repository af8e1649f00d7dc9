"""The flow trace under abuse (gateway/observe/trace/): what anyone can send costs one small hop,
every hop and the whole trace are bounded, junk does not flush real flows, a long-lived link's keys
stay few, and hostile bytes at the trace's own pages get a 4xx, never the last-resort 500.

Each input goes over a real socket to a gateway on 127.0.0.1 in front of
:class:`~support.upstream.RecordingUpstream`; what the trace kept is read from its pages, or
weighed in the app's own trace where a page shows only part of it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
import yarl
from aiohttp import web
from support.harness import ALEXA_REDIRECT, PLATFORM_BASIC, PLATFORM_ID, Gateway, mapping_yaml, post_token, write_gateway_files
from support.oauth import basic
from support.oidc_provider import login_and_consent
from support.sockets import bound_socket, port_of, start_site
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault, RecordingUpstream

from e2e.test_fault_matrix import PROVIDER
from e2e.test_trace import TRACE_TOKEN, link, token, trace_json
from gateway.config.settings import load_config
from gateway.observe.trace.model import MAX_HOP_BYTES, MAX_KEYS, TRACE, FlowTrace
from gateway.web.app import create_app

BEARER = {"Authorization": f"Bearer {TRACE_TOKEN}"}


@pytest.fixture
async def gateways() -> AsyncIterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gateway in started:
        await gateway.runner.cleanup()


async def start(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway], *, trace: str = "flows: 20",
                platform_extra: str = "", extra: str = "") -> Gateway:
    mapping = mapping_yaml(fake, upstream_client_id=DEFAULT_CLIENT_ID, token_url=fake.token_endpoint,
                           platform_extra=platform_extra, extra=extra)
    sock = bound_socket()
    path, env = write_gateway_files(tmp_path, {PROVIDER: mapping}, port=port_of(sock), upstream_secret=DEFAULT_CLIENT_SECRET,
                                    more=f"trace: {{token: {TRACE_TOKEN}, {trace}}}\n")
    config = load_config(path, env=env)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    gateway = Gateway(await start_site(runner, sock=sock), config, runner)
    gateways.append(gateway)
    return gateway


def store_of(gateway: Gateway) -> FlowTrace:
    return gateway.runner.app[TRACE]


def junk_body(code: str, names: int = 1500) -> dict[str, str]:
    """A token request with ``names`` distinct parameter names (about 15 KiB on the wire)."""
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT,
            **{secrets.token_hex(4): "" for _ in range(names)}}


async def test_an_unauthenticated_token_request_is_one_small_hop_of_its_own(
    tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]
) -> None:
    gateway = await start(tmp_path, fake, gateways)
    code, _ = await link(gateway)
    [before] = await trace_json(gateway)
    wrong = basic(PLATFORM_ID, "not-the-platform-secret")
    async with aiohttp.ClientSession() as client:
        for _ in range(10):  # the real code: a trace that records before authentication joins them to the link
            assert (await post_token(client, gateway.endpoint("token", PROVIDER), junk_body(code), authorization=wrong)).status == 401
    flows = await trace_json(gateway)
    link_flow = next(flow for flow in flows if flow["id"] == before["id"])
    assert link_flow["hops"] == before["hops"]  # nothing joined the real link
    refused = [flow for flow in flows if flow["id"] != before["id"]]
    assert len(refused) == 10
    for flow in refused:
        [hop] = flow["hops"]
        assert hop["step"] == "token" and not hop["ok"] and "did not authenticate" in hop["reason"]
        assert len(json.dumps(hop)) < 400, hop  # no parameter of the body is kept


async def test_an_authenticated_hop_keeps_a_bounded_part_of_what_was_sent(
    tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]
) -> None:
    gateway = await start(tmp_path, fake, gateways)
    long_name = "n" * 3000
    async with aiohttp.ClientSession() as client:
        assert (await post_token(client, gateway.endpoint("token", PROVIDER), {**junk_body("some-code", 1000), long_name: "v"})).status == 400
    [flow] = await trace_json(gateway)
    request, answer = flow["hops"]
    form = request["detail"]["form"]
    assert len(form) <= 25 and form["…"].endswith("more parameters"), form
    assert all(len(name) <= 64 for name in form)
    assert all(len(json.dumps(hop)) <= MAX_HOP_BYTES for hop in (request, answer))


@pytest.mark.timeout(180)  # some thousand requests: under coverage on a busy machine it is the slowest
async def test_the_trace_holds_its_byte_budget_and_junk_evicts_junk_first(
    tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]
) -> None:
    gateway = await start(tmp_path, fake, gateways, trace="flows: 10000, max_bytes: 262144")
    store = store_of(gateway)
    async with aiohttp.ClientSession() as client:
        for n in range(0, 400, 8):  # authenticated junk, 20 codes each joining up to 64 hops: ~6 MiB on the wire
            await asyncio.gather(*(post_token(client, gateway.endpoint("token", PROVIDER), junk_body(f"code-{(n + i) % 20}")) for i in range(8)))
        weighed = sum(len(json.dumps(flow.as_json(), ensure_ascii=False)) for flow in store.flows())
        assert 200_000 < store.size <= 262144 and weighed <= 262144, (store.size, weighed)

        code, _ = await link(gateway)
        status, first = await token(gateway, {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT})
        assert status == 200, first
        [real, *_] = await trace_json(gateway)
        for n in range(300):  # anyone's junk at /authorize and an unauthenticated /token
            query = urlencode({"client_id": f"junk-{n}", "redirect_uri": ALEXA_REDIRECT, "response_type": "code"})
            async with client.get(f"{gateway.url}/{PROVIDER}/authorize?{query}") as response:
                assert response.status == 400
            assert (await post_token(client, gateway.endpoint("token", PROVIDER), junk_body(f"x{n}", 10), authorization="Basic AAAA")).status == 401
    weighed = sum(len(json.dumps(flow.as_json(), ensure_ascii=False)) for flow in store.flows())
    assert store.size <= 262144 and weighed <= 262144, (store.size, weighed)
    kept = {flow.id: flow for flow in store.flows()}
    assert real["id"] in kept and len(kept[real["id"]].hops) == len(real["hops"]), "the completed link was flushed"


async def test_junk_at_authorize_does_not_flush_the_real_flows(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake, gateways, trace="flows: 20")
    real = []
    for n in range(3):
        code, _ = await link(gateway, state=f"alexa-state-{n}")
        status, answer = await token(gateway, {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT})
        assert status == 200, answer
        real.append((await trace_json(gateway))[0]["id"])
    async with aiohttp.ClientSession() as client:
        for n in range(200):  # refused at once, and accepted but never finished (the browser never comes back)
            client_id = f"junk-{n}" if n % 2 else PLATFORM_ID
            query = urlencode({"client_id": client_id, "redirect_uri": ALEXA_REDIRECT, "response_type": "code", "state": f"s{n}"})
            async with client.get(f"{gateway.url}/{PROVIDER}/authorize?{query}", allow_redirects=False) as response:
                assert response.status in (302, 400)
    kept = {flow["id"] for flow in await trace_json(gateway)}
    assert len(kept) == 20 and set(real) <= kept, "the completed links were flushed"


async def test_a_long_lived_link_keeps_a_few_keys_each_once(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake, gateways)
    code, _ = await link(gateway)
    status, answer = await token(gateway, {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT})
    assert status == 200, answer
    for _ in range(20):
        refresh = {"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]}
        status, again = await token(gateway, refresh)  # retried within the grace window: the same answer
        status, answer = await token(gateway, refresh)
        assert status == 200 and again == answer
    [flow] = store_of(gateway).flows()
    assert len(flow.keys) <= MAX_KEYS and len(set(flow.keys)) == len(flow.keys)
    assert store_of(gateway).find("refresh", answer["refresh_token"]) is flow  # the latest still leads here


async def test_the_pages_are_a_list_one_flow_each_and_a_bounded_json(
    tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]
) -> None:
    gateway = await start(tmp_path, fake, gateways, trace="flows: 300")
    async with aiohttp.ClientSession() as client:
        for n in range(0, 240, 8):
            await asyncio.gather(*(post_token(client, gateway.endpoint("token", PROVIDER), junk_body(f"c{n + i}", 30)) for i in range(8)))
        async with client.get(f"{gateway.url}/_trace/", headers=BEARER) as response:
            listing = await response.text()
        assert response.status == 200 and 'class="diagram"' not in listing and listing.count("/_trace/flow/") == 240
        async with client.get(f"{gateway.url}/_trace/flows.json", headers=BEARER) as response:
            document: dict[str, Any] = await response.json()
        assert len(document["flows"]) == 100 and document["more"] == 140
        async with client.get(f"{gateway.url}/_trace/flows.json?limit=5", headers=BEARER) as response:
            assert len((await response.json())["flows"]) == 5
        newest = document["flows"][0]["id"]
        async with client.get(f"{gateway.url}/_trace/flow/{newest}", headers=BEARER) as response:
            page = await response.text()
        assert response.status == 200 and page.count('class="diagram"') == 1 and f"flow {newest}" in page
        async with client.get(f"{gateway.url}/_trace/flow/no-such-flow", headers=BEARER) as response:
            assert response.status == 404
        async with client.get(f"{gateway.url}/_trace/flow/{newest}") as response:
            assert response.status == 401


# --- hostile bytes: a 4xx (or the upstream's 502), never the last-resort 500 -------------------------


async def raw_request(gateway: Gateway, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (no client library cleans them) and read the status and the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", yarl.URL(gateway.url).port)
    writer.write(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(answer.split(b" ", 2)[1]), answer


async def test_a_bearer_token_that_is_not_utf8_is_refused(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake, gateways)
    for path in ("/_trace/", "/_trace/flows.json", "/_trace/flow/1-x"):
        for value in (b"Bearer \xff\xfe\xfd", b"Bearer " + TRACE_TOKEN.encode() + b"\xc3"):
            status, answer = await raw_request(gateway, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + b"\r\n")
            assert status == 401, answer[:300]
        status, _ = await raw_request(gateway, b"GET /_trace/ HTTP/1.1\r\nHost: x\r\nCookie: gateway_trace=\xff\xfe\r\n")
        assert status == 401


#: Form bodies aiohttp cannot read: (Content-Type, body).
UNREADABLE_FORMS = [
    ("multipart/form-data", b"token=x"),
    ("multipart/form-data; boundary=" + "b" * 80, b"token=x"),
    ("multipart/form-data; boundary=abc", b"token=x"),
    ("multipart/form-data; boundary=abc", b'--abc\r\nContent-Disposition: form-data; name="token"\r\n\r\n\xff\xfe\r\n--abc--\r\n'),
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"token=x"),
]


async def test_a_login_form_that_cannot_be_read_is_a_400(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake, gateways)
    async with aiohttp.ClientSession() as client:
        for content_type, body in UNREADABLE_FORMS:
            async with client.post(f"{gateway.url}/_trace/login", data=body, headers={"Content-Type": content_type}) as response:
                assert response.status == 400, (content_type, await response.text())
                assert "Flow trace" in await response.text()
        gzip = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}
        async with client.post(f"{gateway.url}/_trace/login", data=b"token=not-gzip", headers=gzip) as response:
            assert response.status == 400, await response.text()


async def test_an_upstream_answer_nested_400_deep_is_a_502_with_its_failure_header(
    tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]
) -> None:
    gateway = await start(tmp_path, fake, gateways)
    code, _ = await link(gateway)
    fake.fault = Fault(status=200, body='{"a":' * 400 + "1" + "}" * 400, content_type="application/json")
    async with aiohttp.ClientSession() as client:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT}
        async with client.post(f"{gateway.url}/{PROVIDER}/token", data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
            assert response.status == 502, await response.text()
            assert response.headers["Gateway-Upstream-Failure"] == "unusable_answer"
    [flow] = await trace_json(gateway)
    assert flow["failed_step"] == "normalise"


# --- the implicit grant's token is never shown --------------------------------------------------------


async def test_an_implicit_token_after_a_redirect_query_and_no_state_is_redacted(
    tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]
) -> None:
    redirect_uri = "https://platform.example/linked?action=link"
    gateway = await start(tmp_path, fake, gateways, platform_extra=f"redirect_uris: ['{redirect_uri}']\n", extra="grant: implicit\n")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        query = urlencode({"client_id": PLATFORM_ID, "redirect_uri": redirect_uri, "response_type": "token"})
        async with browser.get(f"{gateway.url}/{PROVIDER}/authorize?{query}", allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            to_upstream = response.headers["Location"]
        async with browser.get(yarl.URL(to_upstream, encoded=True), allow_redirects=False) as response:
            to_callback = response.headers["Location"]
        async with browser.get(yarl.URL(to_callback, encoded=True), allow_redirects=False) as response:
            assert response.status == 302
            landing = urlsplit(response.headers["Location"])
    assert landing.query == "action=link" and "state" not in landing.fragment
    access_token = parse_qs(landing.fragment)["access_token"][0]
    [flow] = await trace_json(gateway)
    redirect = next(hop for hop in flow["hops"] if hop["step"] == "platform redirect")["detail"]["redirect"]
    assert redirect.startswith("https://platform.example/linked?action=link#access_token=sha256:"), redirect
    seen = json.dumps(flow)
    assert access_token not in seen and access_token[:12] not in seen


# --- the demo shows its own random trace token, never the operator's ----------------------------------


@pytest.mark.parametrize("configured", [True, False], ids=["operator's token", "the demo's own"])
async def test_the_demo_never_shows_a_configured_trace_token(tmp_path: Path, configured: bool) -> None:
    root = Path(__file__).resolve().parents[2]
    operator = "operator-trace-token-" + secrets.token_hex(16)
    sock = bound_socket()
    (tmp_path / "gateway.yaml").write_text(
        f"listen: {{host: 127.0.0.1, port: {port_of(sock)}}}\nkeys: []\ncookie: {{secure: false}}\n"
        f"mappings: {root / 'mappings'}\nproviders: []\ndemo: true\n" + (f"trace: {{token: {operator}}}\n" if configured else "")
    )
    config = load_config(tmp_path / "gateway.yaml")
    assert config.trace is not None and config.trace.generated is not configured
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    base = str(await start_site(runner, sock=sock)).replace("127.0.0.1", "localhost")
    try:
        async with aiohttp.ClientSession() as browser:
            callback = await login_and_consent(browser, f"{base}/_demo/platform/start",
                                               stop_at_prefix=f"{base}/_demo/platform/callback", login="newcomer")
            async with browser.get(callback) as response:
                page = await response.text()
        assert response.status == 200 and "What happened, hop by hop" in page
        if configured:
            assert operator not in page and operator[:16] not in page and "trace token from gateway.yaml" in page
        else:
            assert config.trace.token in page  # the demo's own, made at start, is meant to be shown
    finally:
        await runner.cleanup()
