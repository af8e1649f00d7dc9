"""The upstream fault matrix: every way an upstream token endpoint fails × both grants, table-driven.

For each cell the platform (Alexa) posts one token request — ``authorization_code`` with a sealed
code minted as the callback mints it, or ``refresh_token`` — to a real gateway in front of
:class:`~support.upstream.RecordingUpstream` misbehaving as the cell says, and the gateway must answer:

* the RFC 6749 answer docs/mapping-reference.md's "Errors the platform sees" promises (status and ``error``):
  upstream slow, unreachable, cut off, 5xx or throttled → 503 ``temporarily_unavailable`` (retry
  later; never ``invalid_grant``, on which Google unlinks a good link); an unusable answer → 502
  ``server_error``; the grant refused → 400 ``invalid_grant``; the *gateway's* own credentials or
  request refused → 502 ``server_error`` (the platform's secret is fine);
* as JSON with ``Cache-Control: no-store`` and ``Pragma: no-cache``;
* within the mapping's ``upstream.token.timeout`` + 1 s;
* after exactly one upstream request (no retry: a retried code exchange spends the code twice);
* with ``gateway_upstream_failures_total{kind=…}`` up by one for the right kind (and no other).

The implicit grant meets the same upstream at the callback: for a subset of the faults, the error
goes to the validated redirect URI in the fragment, with the platform's state — never a 500, never
a hang.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
import yarl
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from support.harness import (
    ALEXA_REDIRECT,
    PLATFORM_ID,
    Gateway,
    mapping_yaml,
    post_token,
    start_gateway,
    write_gateway_files,
)
from support.sockets import bound_socket, port_of, refusing_port, start_site
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault, RecordingUpstream

from gateway.config.settings import load_config
from gateway.oauth.seal import Sealer
from gateway.oauth.state import CodePayload, seal_code
from gateway.upstream.failure import FAILURE_HEADER
from gateway.web.app import create_app

PROVIDER = "fake"
#: The mapping's ``upstream.token.timeout`` in these tests.
TIMEOUT = 0.5
#: Longer than TIMEOUT: what a slow upstream takes.
SLOW = 1.5
KINDS = ("timeout", "connection", "too_large", "http_5xx", "throttled", "refused", "unusable_answer")

#: An outage page as a proxy or load balancer in front of the upstream serves it (with attributes,
#: so it even parses as a form: ``<html lang`` = ``"en">…``).
OUTAGE_HTML = '<html lang="en"><head><title>{status}</title></head><body><h1>{status} Service Unavailable</h1></body></html>'
WAF_HTML = '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Access denied</title></head><body class="blocked">Request blocked by security rules</body></html>'


#: A good token answer of exactly 64 KiB, the most the gateway reads (docs/security.md: 64 KiB upstream answers).
_EMPTY = {"access_token": "at.big", "token_type": "bearer", "padding": ""}
EXACTLY_64KIB = {**_EMPTY, "padding": "x" * (64 * 1024 - len(json.dumps(_EMPTY)))}
assert len(json.dumps(EXACTLY_64KIB)) == 64 * 1024


def html(status: int, **headers: str) -> Fault:
    return Fault(status=status, body=OUTAGE_HTML.format(status=status), content_type="text/html", headers=headers)


def json_fault(status: int, body: Any, **headers: str) -> Fault:
    return Fault(status=status, body=body, headers=headers)


@dataclass(frozen=True)
class Cell:
    """One upstream fault and what the platform must see because of it."""

    id: str
    fault: Fault | None
    """None: nobody listens on the token URL (connection refused)."""
    status: int
    error: str | None
    """The RFC 6749 error; None for a cell where the token answer is good (a control)."""
    kind: str | None
    """The ``gateway_upstream_failures_total`` kind; None: no upstream failure counted."""
    method: str = "POST"
    """The mapping's ``upstream.token.method``."""

    @property
    def upstream_calls(self) -> int:
        return 0 if self.fault is None else 1

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


TEMPORARILY = (503, "temporarily_unavailable")
SERVER_ERROR = (502, "server_error")
INVALID_GRANT = (400, "invalid_grant")

CELLS = [
    # -- the upstream is slow, unreachable or cut off: 503, try again later -------------------------
    Cell("timeout", Fault(delay=SLOW), *TEMPORARILY, "timeout"),
    Cell("no-answer-at-all", Fault(hang=True), *TEMPORARILY, "timeout"),
    Cell("stalled-body", Fault(stall=SLOW), *TEMPORARILY, "timeout"),
    Cell("slow-chunks-past-deadline", Fault(chunks=8, chunk_delay=0.2), *TEMPORARILY, "timeout"),
    Cell("connection-refused", None, *TEMPORARILY, "connection"),
    Cell("closed-before-answer", Fault(disconnect="before_headers"), *TEMPORARILY, "connection"),
    Cell("closed-mid-answer", Fault(disconnect="mid_body"), *TEMPORARILY, "connection"),
    # -- outages and throttling: 503 --------------------------------------------------------------
    Cell("500-html", html(500), *TEMPORARILY, "http_5xx"),
    Cell("502-html", html(502), *TEMPORARILY, "http_5xx"),
    Cell("503-html", html(503, **{"Retry-After": "30"}), *TEMPORARILY, "http_5xx"),
    Cell("504-html", html(504), *TEMPORARILY, "http_5xx"),
    Cell("429-html", html(429, **{"Retry-After": "30"}), *TEMPORARILY, "throttled"),
    Cell("408-html", html(408), *TEMPORARILY, "throttled"),
    Cell("503-json-temporarily_unavailable", json_fault(503, {"error": "temporarily_unavailable"}), *TEMPORARILY, "http_5xx"),
    Cell("429-json-no-code", json_fault(429, {"message": "API rate limit exceeded"}), *TEMPORARILY, "throttled"),
    # -- answers the gateway can't use: 502 server_error ------------------------------------------
    Cell("200-garbage", Fault(status=200, body="<<<\x00 not a token >>>", content_type="text/plain"), *SERVER_ERROR, "unusable_answer"),
    Cell("200-broken-json", Fault(status=200, body='{"access_token": "at', content_type="application/json"), *SERVER_ERROR, "unusable_answer"),
    Cell("200-json-without-access_token", json_fault(200, {"token_type": "bearer", "expires_in": 3600}), *SERVER_ERROR, "unusable_answer"),
    Cell("200-json-array", json_fault(200, ["access_token", "at"]), *SERVER_ERROR, "unusable_answer"),
    Cell("200-empty-body", Fault(status=200, body=b"", content_type="application/json"), *SERVER_ERROR, "unusable_answer"),
    Cell("200-over-64KiB", json_fault(200, {"access_token": "at", "padding": "x" * (64 * 1024)}), *SERVER_ERROR, "too_large"),
    Cell("200-over-64KiB-chunked", Fault(status=200, body=json.dumps({"access_token": "at", "pad": "x" * 70_000}),
                                         content_type="application/json", chunks=10), *SERVER_ERROR, "too_large"),
    Cell("302-redirect", Fault(status=302, headers={"Location": "https://login.example/sso?next=/token"}), *SERVER_ERROR, "unusable_answer"),
    Cell("302-redirect-with-html", Fault(status=302, body='<a href="https://login.example/">moved</a>', content_type="text/html",
                                         headers={"Location": "https://login.example/"}), *SERVER_ERROR, "unusable_answer"),
    # a redirect is never a token answer, even with a token in its body
    Cell("302-with-token-json", json_fault(302, {"access_token": "at", "token_type": "bearer", "expires_in": 3600},
                                           Location="https://login.example/"), *SERVER_ERROR, "unusable_answer"),
    Cell("307-with-token-json", json_fault(307, {"access_token": "at", "token_type": "bearer"}, Location="/token"),
         *SERVER_ERROR, "unusable_answer"),
    # -- the grant is bad: 400 invalid_grant (not an upstream failure) -----------------------------
    Cell("200-json-error-invalid_grant", json_fault(200, {"error": "invalid_grant"}), *INVALID_GRANT, None),
    Cell("400-invalid_grant", json_fault(400, {"error": "invalid_grant", "error_description": "expired"}), *INVALID_GRANT, None),
    Cell("400-unknown-error-code", json_fault(400, {"error": "bad_verification_code"}), *INVALID_GRANT, None),
    # -- the upstream refuses the gateway's own credentials or request: 502 server_error ------------
    Cell("400-invalid_client", json_fault(400, {"error": "invalid_client"}), *SERVER_ERROR, "refused"),
    Cell("401-invalid_client", json_fault(401, {"error": "invalid_client"}, **{"WWW-Authenticate": 'Basic realm="up"'}),
         *SERVER_ERROR, "refused"),
    Cell("400-invalid_request", json_fault(400, {"error": "invalid_request"}), *SERVER_ERROR, "refused"),
    Cell("400-unsupported_grant_type", json_fault(400, {"error": "unsupported_grant_type"}), *SERVER_ERROR, "refused"),
    # -- controls: slow but within the deadline, in pieces; exactly at the size limit ------------------
    Cell("200-chunked-slow-but-in-time", Fault(chunks=4, chunk_delay=0.05), 200, None, None),
    Cell("200-exactly-64KiB", json_fault(200, EXACTLY_64KIB), 200, None, None),
    # -- cells where the gateway's answer looks wrong ---------------------------------------------------
    Cell(
        "401-empty-body", Fault(status=401, headers={"WWW-Authenticate": 'Basic realm="up"'}), *SERVER_ERROR, "refused",
    ),
    Cell(
        "403-html-waf-page", Fault(status=403, body=WAF_HTML, content_type="text/html"), *SERVER_ERROR, "refused",
    ),
    Cell(
        "503-html-over-64KiB", Fault(status=503, body=OUTAGE_HTML.format(status=503) + "<!--" + "x" * 70_000 + "-->",
                                     content_type="text/html"), *TEMPORARILY, "http_5xx",
    ),
    Cell(
        "500-json-server_error", json_fault(500, {"error": "server_error", "error_description": "db down"}), *TEMPORARILY, "http_5xx",
    ),
    Cell(
        "503-json-invalid_grant", json_fault(503, {"error": "invalid_grant"}), *TEMPORARILY, "http_5xx",
    ),
    Cell(
        "GET-closed-before-answer", Fault(disconnect="before_headers"), *TEMPORARILY, "connection", method="GET",
    ),
    Cell("GET-503-html", html(503), *TEMPORARILY, "http_5xx", method="GET"),
]


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------


GatewayMaker = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_fake_gateway(tmp_path: Path, fake: RecordingUpstream) -> AsyncIterator[GatewayMaker]:
    """An in-process gateway in front of ``fake`` (or, ``refused=True``, of a port nobody listens on)."""
    started: list[Gateway] = []

    async def make(*, method: str = "POST", refused: bool = False, implicit: bool = False) -> Gateway:
        token_url = f"http://127.0.0.1:{refusing_port()}/token" if refused else fake.token_endpoint
        mapping = mapping_yaml(
            fake,
            upstream_client_id=DEFAULT_CLIENT_ID,
            token_url=token_url,
            token_extra=f"method: {method}\ntimeout: {TIMEOUT}\n",
            extra="grant: implicit\n" if implicit else "",
        )
        gateway = await start_gateway(
            tmp_path, {PROVIDER: mapping}, upstream_secret=DEFAULT_CLIENT_SECRET
        )
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        await gateway.runner.cleanup()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: aiohttp.ClientSession, gateway: Gateway) -> Samples:
    async with client.get(f"{gateway.url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def failure_deltas(before: Samples, after: Samples) -> dict[str, float]:
    """``gateway_upstream_failures_total`` increments by kind (only kinds that moved)."""
    deltas = {}
    for kind in KINDS:
        key = ("gateway_upstream_failures_total", (("kind", kind), ("provider", PROVIDER)))
        delta = after.get(key, 0.0) - before.get(key, 0.0)
        if delta:
            deltas[kind] = delta
    return deltas


def sealed_code(gateway: Gateway, upstream_code: str) -> str:
    """The code the platform holds, minted exactly as the callback mints it."""
    return seal_code(Sealer(gateway.config.keys), CodePayload(upstream_code, PLATFORM_ID, ALEXA_REDIRECT, PROVIDER), ttl=300)


async def settle() -> None:
    """Let the callbacks already due run (a few loop turns); no wall-clock margin.

    A retry could only come *before* the gateway's answer: the handler awaits ``send()``, aiohttp's
    own retry of an idempotent request on a dropped keep-alive connection happens inside that call,
    and the recording upstream records a request before it answers or faults. So once the platform holds
    the answer the upstream's record is complete; this used to sleep 0.1 s, 108 times."""
    for _ in range(5):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------
# the matrix: both grants × every fault, at /token
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", [cell.param() for cell in CELLS])
@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
async def test_token_endpoint_fault(make_fake_gateway: GatewayMaker, fake: RecordingUpstream, grant: str, cell: Cell) -> None:
    gateway = await make_fake_gateway(method=cell.method, refused=cell.fault is None)
    callback_url = gateway.config.callback_url(PROVIDER)
    if grant == "authorization_code":
        upstream_code = fake.issue_code(callback_url)
        form = {"grant_type": grant, "code": sealed_code(gateway, upstream_code), "redirect_uri": ALEXA_REDIRECT}
        sent = ("code", upstream_code)
    else:
        refresh_token = fake.issue_refresh_token(redirect_uri=callback_url)
        form = {"grant_type": grant, "refresh_token": refresh_token}
        sent = ("refresh_token", refresh_token)
    fake.fault = cell.fault

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as platform:
        before = await scrape(platform, gateway)
        answer = await post_token(platform, gateway.endpoint("token", PROVIDER), form)
        await settle()
        after = await scrape(platform, gateway)

    # What the platform sees.
    if cell.error is None:
        assert answer.status == cell.status, answer.body
        assert answer.body["token_type"] == "Bearer" and answer.body["access_token"].startswith("at."), answer.body
    else:
        assert (answer.status, answer.body.get("error")) == (cell.status, cell.error), answer.body
        assert "access_token" not in answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Pragma"] == "no-cache"
    assert answer.elapsed < TIMEOUT + 1.0, answer.elapsed

    # Exactly one upstream request, carrying this grant, and no retry.
    assert len(fake.token_requests) == cell.upstream_calls, [(r.method, r.grant_type) for r in fake.token_requests]
    for received in fake.token_requests:
        assert received.method == cell.method
        assert received.grant_type == grant
        assert received.param(sent[0]) == sent[1]

    # The failure is counted once, under the right kind, and the outcome under the error.
    assert failure_deltas(before, after) == ({cell.kind: 1.0} if cell.kind else {})
    # … and named to the platform in the header `gateway linktest` reads (gateway/upstream/failure.py).
    assert answer.headers.get(FAILURE_HEADER) == cell.kind
    outcome = cell.error or "success"
    key = ("gateway_requests_total", (("endpoint", "token"), ("outcome", outcome), ("provider", PROVIDER)))
    assert after.get(key, 0.0) - before.get(key, 0.0) == 1.0


async def test_the_matrix_covers_what_the_brief_asks() -> None:
    """A guard against the table losing rows: every fault class is there, for both grants."""
    ids = {cell.id for cell in CELLS}
    for required in (
        "timeout", "connection-refused", "closed-mid-answer", "500-html", "502-html", "503-html", "504-html",
        "429-html", "408-html", "200-garbage", "200-json-without-access_token", "200-json-error-invalid_grant",
        "400-invalid_grant", "400-invalid_client", "401-invalid_client", "400-unknown-error-code",
        "200-over-64KiB", "200-empty-body", "302-redirect", "stalled-body", "no-answer-at-all",
    ):
        assert required in ids, required
    assert len(ids) == len(CELLS)


# ---------------------------------------------------------------------------------------------
# the implicit grant: the same faults at the callback
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImplicitCell:
    id: str
    fault: Fault | None
    error: str | None  # in the fragment; None: a token
    kind: str | None


def implicit_cell(id: str, fault: Fault | None, error: str | None, kind: str | None) -> ImplicitCell:
    return ImplicitCell(id, fault, error, kind)


IMPLICIT_CELLS = [
    implicit_cell("timeout", Fault(delay=SLOW), "temporarily_unavailable", "timeout"),
    implicit_cell("no-answer-at-all", Fault(hang=True), "temporarily_unavailable", "timeout"),
    implicit_cell("stalled-body", Fault(stall=SLOW), "temporarily_unavailable", "timeout"),
    implicit_cell("connection-refused", None, "temporarily_unavailable", "connection"),
    implicit_cell("closed-mid-answer", Fault(disconnect="mid_body"), "temporarily_unavailable", "connection"),
    implicit_cell("503-html", html(503), "temporarily_unavailable", "http_5xx"),
    implicit_cell("429-html", html(429, **{"Retry-After": "30"}), "temporarily_unavailable", "throttled"),
    implicit_cell("200-garbage", Fault(status=200, body="<<< not a token >>>", content_type="text/plain"), "server_error", "unusable_answer"),
    implicit_cell("200-json-without-access_token", json_fault(200, {"token_type": "bearer"}), "server_error", "unusable_answer"),
    implicit_cell("200-over-64KiB", json_fault(200, {"access_token": "at", "padding": "x" * (64 * 1024)}), "server_error", "too_large"),
    # invalid_grant is not an authorization-endpoint error (RFC 6749 §4.2.2.1): access_denied.
    implicit_cell("400-invalid_grant", json_fault(400, {"error": "invalid_grant"}), "access_denied", None),
    implicit_cell("401-invalid_client", json_fault(401, {"error": "invalid_client"}), "server_error", "refused"),
    implicit_cell("200-chunked-slow-but-in-time", Fault(chunks=4, chunk_delay=0.05), None, None),
]


async def implicit_callback(
    make_fake_gateway: GatewayMaker, fake: RecordingUpstream, cell: ImplicitCell, state: str
) -> tuple[aiohttp.ClientResponse, float, Samples, Samples]:
    """A user's browser through /authorize and the recording upstream, then the callback with ``cell``'s fault."""
    gateway = await make_fake_gateway(implicit=True, refused=cell.fault is None)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        query = urlencode({
            "client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": state, "response_type": "token",
        })
        async with browser.get(f"{gateway.url}/{PROVIDER}/authorize?{query}", allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            to_upstream = response.headers["Location"]
        async with browser.get(yarl.URL(to_upstream, encoded=True), allow_redirects=False) as response:
            assert response.status == 302
            to_callback = response.headers["Location"]
        fake.fault = cell.fault
        before = await scrape(browser, gateway)
        started = time.monotonic()
        async with browser.get(yarl.URL(to_callback, encoded=True), allow_redirects=False) as response:
            await response.read()
            elapsed = time.monotonic() - started
        await settle()
        after = await scrape(browser, gateway)
    return response, elapsed, before, after


@pytest.mark.parametrize("cell", IMPLICIT_CELLS, ids=[cell.id for cell in IMPLICIT_CELLS])
async def test_implicit_callback_fault(make_fake_gateway: GatewayMaker, fake: RecordingUpstream, cell: ImplicitCell) -> None:
    """The error goes back to the validated redirect URI in the fragment, with the state; never a
    500, never a hang, one upstream request."""
    state = "st & 1"
    response, elapsed, _, _ = await implicit_callback(make_fake_gateway, fake, cell, state)
    assert response.status == 302, response.status
    assert elapsed < TIMEOUT + 1.0, elapsed
    assert response.headers["Cache-Control"] == "no-store"
    location = response.headers["Location"]
    assert location.startswith(ALEXA_REDIRECT + "#"), location
    assert urlsplit(location).query == ""  # nothing in the query: the fragment only
    fragment = dict(parse_qsl(urlsplit(location).fragment))
    assert fragment["state"] == state
    if cell.error is None:
        assert fragment["access_token"].startswith("at.") and fragment["token_type"] == "Bearer", fragment
        assert "error" not in fragment
    else:
        assert fragment["error"] == cell.error, fragment
        assert "access_token" not in fragment
    assert len(fake.token_requests) == (0 if cell.fault is None else 1)


@pytest.mark.parametrize(
    "cell",
    [
        pytest.param(cell, id=cell.id)
        for cell in IMPLICIT_CELLS
    ],
)
async def test_implicit_callback_fault_is_counted(make_fake_gateway: GatewayMaker, fake: RecordingUpstream, cell: ImplicitCell) -> None:
    """``gateway_upstream_failures_total{kind}`` counts the implicit grant's upstream call as it
    counts /token's (docs/operations.md: every upstream token call that failed, by kind)."""
    _, _, before, after = await implicit_callback(make_fake_gateway, fake, cell, "s")
    assert failure_deltas(before, after) == ({cell.kind: 1.0} if cell.kind else {})


# ---------------------------------------------------------------------------------------------
# whose deadline: the mapping's or gateway.yaml's
# ---------------------------------------------------------------------------------------------


async def test_a_mapping_timeout_longer_than_the_gateway_wide_one_is_honoured(tmp_path: Path, fake: RecordingUpstream) -> None:
    """gateway.yaml says 0.5 s, the mapping says 3 s for its slow upstream (a Google mapping may
    allow more than Alexa's budget), the upstream takes 1 s: the mapping's deadline applies."""
    mapping = mapping_yaml(
        fake,
        upstream_client_id=DEFAULT_CLIENT_ID,
        token_extra="timeout: 3\n",
    )
    sock = bound_socket()
    path, env = write_gateway_files(tmp_path, {PROVIDER: mapping}, port=port_of(sock), upstream_secret=DEFAULT_CLIENT_SECRET)
    path.write_text(path.read_text().replace("upstream: {timeout: 3}", "upstream: {timeout: 0.5}"))
    config = load_config(path, env=env)
    assert config.upstream_timeout == 0.5
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    url = await start_site(runner, sock=sock)
    try:
        fake.fault = Fault(delay=1.0)
        form = {"grant_type": "refresh_token", "refresh_token": fake.issue_refresh_token()}
        async with aiohttp.ClientSession() as platform:
            answer = await post_token(platform, Gateway(url, config, runner).endpoint("token", PROVIDER), form)
        assert answer.status == 200, (answer.body, answer.elapsed)
    finally:
        await runner.cleanup()
