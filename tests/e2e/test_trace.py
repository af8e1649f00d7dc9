"""The flow trace (gateway/observe/trace/): every hop of a real link, every fault of the matrix named
at the step where it happened in linktest's words, no secret anywhere, and the page locked.

A gateway with ``trace:`` on runs in front of :class:`~support.upstream.RecordingUpstream`; a browser
(aiohttp with a cookie jar) links through it as a user would, then the platform redeems the code
while the upstream misbehaves as a fault-matrix cell says.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
import yarl
from aiohttp import web
from support.harness import (
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    PLATFORM_SECRET,
    Gateway,
    mapping_yaml,
    write_gateway_files,
)
from support.sockets import bound_socket, port_of, refusing_port, start_site
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault, RecordingUpstream

from e2e.test_fault_matrix import CELLS, IMPLICIT_CELLS, PROVIDER, TIMEOUT, Cell, ImplicitCell
from gateway.config.settings import ConfigError, load_config
from gateway.observe import reasons
from gateway.web.app import create_app

TRACE_TOKEN = "trace-token-0123456789-abcdefghijklmnop"
TRACE_YAML = f"trace: {{token: {TRACE_TOKEN}, flows: 20}}\n"


async def start(tmp_path: Path, fake: RecordingUpstream, *, more: str = TRACE_YAML, refused: bool = False,
                method: str = "POST", upstream_extra: str = "", extra: str = "") -> Gateway:
    token_url = f"http://127.0.0.1:{refusing_port()}/token" if refused else fake.token_endpoint
    mapping = mapping_yaml(
        fake,
        upstream_client_id=DEFAULT_CLIENT_ID,
        token_url=token_url,
        token_extra=f"method: {method}\ntimeout: {TIMEOUT}\n",
        upstream_extra=upstream_extra,
        extra=extra,
    )
    sock = bound_socket()
    path, env = write_gateway_files(tmp_path, {PROVIDER: mapping}, port=port_of(sock), upstream_secret=DEFAULT_CLIENT_SECRET, more=more)
    config = load_config(path, env=env)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    return Gateway(await start_site(runner, sock=sock), config, runner)


@pytest.fixture
async def gateways() -> AsyncIterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gateway in started:
        await gateway.runner.cleanup()


async def link(gateway: Gateway, state: str = "alexa-state-1") -> tuple[str, list[str]]:
    """A user through /authorize, the upstream and /callback; the code Alexa gets, and the secrets seen."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        query = urlencode({"client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": state,
                           "response_type": "code", "scope": "openid"})
        async with browser.get(f"{gateway.url}/{PROVIDER}/authorize?{query}", allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            to_upstream = response.headers["Location"]
            cookie = response.cookies[gateway.config.cookie.name].value
        async with browser.get(yarl.URL(to_upstream, encoded=True), allow_redirects=False) as response:
            to_callback = response.headers["Location"]
        async with browser.get(yarl.URL(to_callback, encoded=True), allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            landing = response.headers["Location"]
    nonce = parse_qs(urlsplit(to_upstream).query)["state"][0]
    upstream_code = parse_qs(urlsplit(to_callback).query)["code"][0]
    code = parse_qs(urlsplit(landing).query)["code"][0]
    return code, [nonce, upstream_code, code, cookie, state]


async def token(gateway: Gateway, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as platform:
        async with platform.post(f"{gateway.url}/{PROVIDER}/token", data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
            return response.status, await response.json()


async def trace_json(gateway: Gateway) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{gateway.url}/_trace/flows.json", headers={"Authorization": f"Bearer {TRACE_TOKEN}"}) as response:
            assert response.status == 200
            flows: list[dict[str, Any]] = (await response.json())["flows"]
            return flows


async def trace_html(gateway: Gateway) -> str:
    """The list page, then each flow's own page it links to, as one text."""
    bearer = {"Authorization": f"Bearer {TRACE_TOKEN}"}
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{gateway.url}/_trace/", headers=bearer) as response:
            assert response.status == 200
            pages = [await response.text()]
        for href in re.findall(r'href="(/_trace/flow/[^"]+)"', pages[0]):
            async with client.get(gateway.url + html.unescape(href), headers=bearer) as response:
                assert response.status == 200
                pages.append(await response.text())
    return "".join(pages)


async def assert_no_secret(gateway: Gateway, secrets: list[str]) -> None:
    """Neither the JSON nor the HTML holds any secret of the test, whole or as its first 12 characters."""
    seen = json.dumps(await trace_json(gateway)) + await trace_html(gateway)
    for secret in [*secrets, PLATFORM_SECRET, DEFAULT_CLIENT_SECRET, PLATFORM_BASIC.split()[1], TRACE_TOKEN]:
        assert len(secret) >= 8, secret
        assert secret not in seen, secret
        if not any(public.startswith(secret[:12]) for public in (DEFAULT_CLIENT_ID, PLATFORM_ID)):
            assert secret[:12] not in seen, secret  # no prefix of the value either


# --- a good link, hop by hop --------------------------------------------------------------------


async def test_a_link_and_its_refreshes_are_one_flow_of_every_hop(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake)
    gateways.append(gateway)
    code, secrets = await link(gateway)
    status, first = await token(gateway, {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT})
    assert status == 200, first
    status, second = await token(gateway, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert status == 200, second
    status, third = await token(gateway, {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert status == 200, third

    flows = await trace_json(gateway)
    assert len(flows) == 1, [f["hops"][0]["step"] for f in flows]
    flow = flows[0]
    assert flow["failed_step"] is None and flow["provider"] == PROVIDER
    steps = [(hop["step"], hop["src"], hop["dst"]) for hop in flow["hops"]]
    exchange = [("upstream token", "gateway", "upstream"), ("upstream answer", "upstream", "gateway"),
                ("normalise", "gateway", "gateway"), ("token answer", "gateway", "platform")]
    assert steps == [
        ("authorize", "platform", "gateway"), ("upstream authorize", "gateway", "upstream"),
        ("callback", "upstream", "gateway"), ("platform redirect", "gateway", "platform"),
        ("token", "platform", "gateway"), *exchange,
        ("refresh", "platform", "gateway"), *exchange,
        ("refresh", "platform", "gateway"), *exchange,
    ]
    google = [hop["google"] for hop in flow["hops"] if hop["step"] in ("token", "refresh")]
    assert google == ["AUTH_CODE_EXCHANGE", "REFRESH_ACCESS_TOKEN", "REFRESH_ACCESS_TOKEN"]
    request = flow["hops"][5]["detail"]
    assert request["method"] == "POST" and request["url"] == fake.token_endpoint
    assert set(request["body"]) >= {"grant_type", "code", "redirect_uri"} and request["body"]["code"].startswith("sha256:")
    assert request["headers"]["Authorization"].startswith("sha256:")
    answer = flow["hops"][6]["detail"]
    assert answer["status"] == 200 and answer["content_type"].startswith("application/json")
    assert answer["body"]["access_token"].startswith("sha256:") and answer["body"]["expires_in"] == 3600
    assert all(hop["ms"] is not None for hop in flow["hops"] if hop["step"] in ("upstream answer", "token answer"))
    assert "answer: format" in flow["hops"][7]["mapping"]

    tokens = [first[k] for k in ("access_token", "refresh_token")] + [second["refresh_token"], third["access_token"]]
    await assert_no_secret(gateway, secrets + tokens)
    page = await trace_html(gateway)
    assert "<script" not in page and 'class="diagram"' in page
    assert page.count('class="lane"') == 3 and "No step failed." in page


# --- every failure kind of the fault matrix -------------------------------------------------------


def expected(cell: Cell) -> tuple[str, tuple[str, ...]]:
    """The step that fails for ``cell`` and the phrases one of which its reason must start with."""
    if cell.kind in ("timeout", "connection", "too_large"):
        return "upstream answer", (reasons.upstream_failure(cell.kind),)
    if cell.kind == "unusable_answer":
        return "normalise", (reasons.upstream_failure("unusable_answer"), "the upstream answered an HTML page")
    return "normalise", (reasons.upstream_failure(cell.kind or "invalid_grant"),)


FAILING = [cell.param() for cell in CELLS if cell.error is not None]


@pytest.mark.parametrize("cell", FAILING)
async def test_a_failed_link_names_the_step_and_why(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway], cell: Cell) -> None:
    gateway = await start(tmp_path, fake, refused=cell.fault is None, method=cell.method)
    gateways.append(gateway)
    code, secrets = await link(gateway)
    fake.fault = cell.fault
    status, body = await token(gateway, {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT})
    assert (status, body["error"]) == (cell.status, cell.error)

    [flow] = await trace_json(gateway)
    step, phrases = expected(cell)
    assert flow["failed_step"] == step, flow
    assert flow["reason"].startswith(phrases), flow["reason"]
    assert [hop["step"] for hop in flow["hops"]][:5] == ["authorize", "upstream authorize", "callback", "platform redirect", "token"]
    assert flow["hops"][-1]["step"] == "token answer" and flow["hops"][-1]["detail"]["status"] == cell.status
    page = await trace_html(gateway)
    assert f"Failed at <strong>{step}</strong>" in page
    await assert_no_secret(gateway, secrets)


@pytest.mark.parametrize("cell", [c.param() for c in CELLS if c.id in ("timeout", "500-html", "400-invalid_grant", "401-invalid_client")])
async def test_a_failed_refresh_names_the_step_and_why(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway], cell: Cell) -> None:
    gateway = await start(tmp_path, fake)
    gateways.append(gateway)
    refresh_token = fake.issue_refresh_token(redirect_uri=gateway.config.callback_url(PROVIDER))
    fake.fault = cell.fault
    status, _ = await token(gateway, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    assert status == cell.status
    [flow] = await trace_json(gateway)
    step, phrases = expected(cell)
    assert flow["failed_step"] == step and flow["reason"].startswith(phrases), flow
    assert flow["hops"][0]["google"] == "REFRESH_ACCESS_TOKEN"
    await assert_no_secret(gateway, [refresh_token])


async def test_a_form_answer_read_as_json_says_so_in_linktests_words(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake, upstream_extra="answer:\n  format: json\n")
    gateways.append(gateway)
    code, secrets = await link(gateway)
    fake.fault = Fault(status=200, body="access_token=at.secret-token-1&token_type=bearer", content_type="text/plain")
    status, _ = await token(gateway, {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT})
    assert status == 502
    [flow] = await trace_json(gateway)
    assert flow["failed_step"] == "normalise"
    assert flow["reason"].startswith("the upstream answered text/plain form data; the mapping reads json"), flow["reason"]
    await assert_no_secret(gateway, [*secrets, "at.secret-token-1"])


async def test_a_lost_flow_and_a_refused_authorize_fail_where_they_happen(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake)
    gateways.append(gateway)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(f"{gateway.url}/{PROVIDER}/callback?state=forged-state-123&code=c0de-c0de") as response:
            assert response.status == 400
        query = urlencode({"client_id": "someone-else", "redirect_uri": ALEXA_REDIRECT, "response_type": "code"})
        async with browser.get(f"{gateway.url}/{PROVIDER}/authorize?{query}") as response:
            assert response.status == 400
    refused, lost = await trace_json(gateway)
    assert lost["failed_step"] == "callback" and lost["reason"] == reasons.callback_failure("lost_flow")
    assert refused["failed_step"] == "authorize" and "refused the platform's authorization request" in refused["reason"]
    await assert_no_secret(gateway, ["forged-state-123", "c0de-c0de"])


async def begin_link(browser: aiohttp.ClientSession, gateway: Gateway) -> str:
    """A user through /authorize: the flow nonce the upstream is to send back."""
    query = urlencode({"client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "alexa-state-1",
                       "response_type": "code", "scope": "openid"})
    async with browser.get(f"{gateway.url}/{PROVIDER}/authorize?{query}", allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]


@pytest.mark.parametrize(
    ("extra", "sent", "description", "reason"),
    [
        pytest.param(
            "callback:\n  keep:\n    region: {pattern: '[a-z]+'}\n", {"code": "c0de-c0de-1", "region": "evil.example"},
            "the upstream's region is not one this gateway may use", reasons.gateway_stopped_callback("unsafe_context"),
            id="unsafe-kept-value",
        ),
        pytest.param("", {"code": "c" * 4000}, "upstream code is too long", reasons.gateway_stopped_callback("code_too_long"),
                     id="code-too-long"),
    ],
)
async def test_a_callback_the_gateway_stops_fails_at_the_platform_redirect(
    tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway], extra: str, sent: dict[str, str], description: str, reason: str,
) -> None:
    """The upstream's answer came back fine, but the gateway can't go on with it: the platform gets
    ``server_error`` at its redirect URI, and the trace names that redirect as the failed step."""
    gateway = await start(tmp_path, fake, extra=extra)
    gateways.append(gateway)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        nonce = await begin_link(browser, gateway)
        callback = f"{gateway.url}/{PROVIDER}/callback?{urlencode({**sent, 'state': nonce})}"
        async with browser.get(callback, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            landing = response.headers["Location"]
    assert landing.startswith(ALEXA_REDIRECT + "?")
    assert {k: v[0] for k, v in parse_qs(urlsplit(landing).query).items()} == {
        "error": "server_error", "error_description": description, "state": "alexa-state-1",
    }
    [flow] = await trace_json(gateway)
    assert [hop["step"] for hop in flow["hops"]] == ["authorize", "upstream authorize", "callback", "platform redirect"]
    assert (flow["failed_step"], flow["reason"]) == ("platform redirect", reason), flow
    assert "Failed at <strong>platform redirect</strong>" in await trace_html(gateway)
    await assert_no_secret(gateway, [nonce, sent["code"]])


# --- access ---------------------------------------------------------------------------------------


async def test_the_trace_refuses_a_missing_or_wrong_token(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake)
    gateways.append(gateway)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        for path in ("/_trace/", "/_trace/flows.json"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TRACE_TOKEN}"},
                            {"Authorization": f"Bearer {TRACE_TOKEN[:-1]}"}):
                async with client.get(gateway.url + path, headers=headers) as response:
                    assert response.status == 401, (path, headers)
                    assert TRACE_TOKEN not in await response.text()
            async with client.get(gateway.url + path + f"?token={TRACE_TOKEN}") as response:
                assert response.status == 401  # never a token in a URL
        async with client.post(f"{gateway.url}/_trace/login", data={"token": "wrong"}) as response:
            assert response.status == 401
        async with client.post(f"{gateway.url}/_trace/login", data={"token": TRACE_TOKEN}, allow_redirects=False) as response:
            assert response.status == 303
            cookie = response.cookies["gateway_trace"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and TRACE_TOKEN not in cookie.value
        async with client.get(f"{gateway.url}/_trace/") as response:
            assert response.status == 200 and "Flow trace" in await response.text()


async def test_the_trace_is_absent_when_off(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway]) -> None:
    gateway = await start(tmp_path, fake, more="")
    gateways.append(gateway)
    assert gateway.config.trace is None
    code, _ = await link(gateway)
    async with aiohttp.ClientSession() as client:
        for path in ("/_trace/", "/_trace/flows.json"):
            async with client.get(gateway.url + path, headers={"Authorization": f"Bearer {TRACE_TOKEN}"}) as response:
                assert response.status == 404


@pytest.mark.parametrize("line", ["trace: {token: short}\n", "trace: {flows: 10}\n", 'trace: {token: ""}\n'])
def test_a_short_or_missing_token_is_refused_at_load(tmp_path: Path, line: str) -> None:
    path, env = write_gateway_files(tmp_path, {PROVIDER: mapping_yaml(_Static(), upstream_client_id=DEFAULT_CLIENT_ID)},
                                    port=8080, more=line)  # only loaded, never served
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    lines = path.read_text().splitlines()
    number = next(i for i, text in enumerate(lines, 1) if text.startswith("trace:"))
    assert f"{path}:{number}: trace.token: the trace token must be at least 32 characters" in str(caught.value)


def test_the_oldest_flows_are_dropped() -> None:
    from gateway.config.settings import TraceSettings
    from gateway.observe.trace.model import FlowTrace

    store = FlowTrace(TraceSettings(token="x" * 32, flows=3))
    for n in range(5):
        store.start("p", "nonce", f"n{n}")
    assert len(store.flows()) == 3
    assert store.find("nonce", "n0") is None and store.find("nonce", "n4") is not None


class _Static:
    issuer = "https://upstream.example"
    authorization_endpoint = "https://upstream.example/authorize"
    token_endpoint = "https://upstream.example/token"


def test_a_flow_keeps_its_link_and_its_latest_refreshes() -> None:
    from gateway.config.settings import TraceSettings
    from gateway.observe.trace.hooks import add_hop
    from gateway.observe.trace.model import LINK_HOPS, MAX_HOPS, FlowTrace

    store = FlowTrace(TraceSettings(token="x" * 32))
    flow = store.start("p")
    for n in range(MAX_HOPS * 3):
        add_hop(store, flow, f"hop {n}", "platform", "gateway")
    assert len(flow.hops) == MAX_HOPS
    assert [hop.step for hop in flow.hops[:LINK_HOPS]] == [f"hop {n}" for n in range(LINK_HOPS)]
    assert flow.hops[-1].step == f"hop {MAX_HOPS * 3 - 1}"


def test_the_demo_traces_with_a_random_token_that_a_reload_keeps() -> None:
    from gateway.web.app import create_app, reload_config

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "gateway.yaml")
    assert config.trace is not None and config.trace.generated and len(config.trace.token) >= 32
    app = create_app(config)
    assert reload_config(app, load_config(root / "gateway.yaml")) == []


@pytest.mark.parametrize("cell", [pytest.param(c, id=c.id) for c in IMPLICIT_CELLS if c.error is not None])
async def test_a_failed_implicit_link_names_the_step_and_why(tmp_path: Path, fake: RecordingUpstream, gateways: list[Gateway], cell: ImplicitCell) -> None:
    """The implicit grant meets the fault at the callback, where the gateway redeems the code itself."""
    gateway = await start(tmp_path, fake, refused=cell.fault is None, extra="grant: implicit\n")
    gateways.append(gateway)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        query = urlencode({"client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "implicit-state-1", "response_type": "token"})
        async with browser.get(f"{gateway.url}/{PROVIDER}/authorize?{query}", allow_redirects=False) as response:
            to_upstream = response.headers["Location"]
        async with browser.get(yarl.URL(to_upstream, encoded=True), allow_redirects=False) as response:
            to_callback = response.headers["Location"]
        fake.fault = cell.fault
        async with browser.get(yarl.URL(to_callback, encoded=True), allow_redirects=False) as response:
            assert response.status == 302
            assert f"error={cell.error}" in response.headers["Location"]
    [flow] = await trace_json(gateway)
    kind = cell.kind or "invalid_grant"
    step = "upstream answer" if kind in ("timeout", "connection", "too_large") else "normalise"
    phrases: tuple[str, ...] = (reasons.upstream_failure(kind),)
    if kind == "unusable_answer":
        phrases += ("the upstream answered an HTML page",)
    assert flow["failed_step"] == step and flow["reason"].startswith(phrases), flow
    steps = [hop["step"] for hop in flow["hops"]]
    assert steps[:4] == ["authorize", "upstream authorize", "callback", "upstream token"] and steps[-1] == "platform redirect"
    upstream_code = parse_qs(urlsplit(to_callback).query)["code"][0]
    nonce = parse_qs(urlsplit(to_upstream).query)["state"][0]
    await assert_no_secret(gateway, [upstream_code, nonce, "implicit-state-1"])
