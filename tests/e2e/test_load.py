"""Load with nothing lost: many complete account links at once through real ``gateway serve`` processes.

The gateway runs as a subprocess (so the load is real HTTP through the real server, its event loop
alone in its process) in front of :class:`~support.upstream.RecordingUpstream`. Each flow is one user with
their own cookie jar plus Alexa's token calls:

    GET /p/authorize → 302 fake /authorize → 302 /p/callback → 302 <Alexa redirect URI>?code&state
    (read, not followed) → POST /p/token (Basic) → POST /p/token refresh → the token works upstream

and every flow must come back whole: its own state, a token that descends from its own upstream
code (the recording upstream writes the code into every token it issues), no 5xx anywhere, exactly one
code exchange and one refresh per flow at the upstream (no retry, no duplicate), and the gateway's
flow counters matching. A second test spreads the hops of each flow over two processes (any
replica serves any hop). A third loads the token endpoint while the upstream fails some requests
in every way it can (chosen per request, so each platform answer is checked against its own
upstream answer: no answer delivered to the wrong request, no retry, every failure counted).

Bounded: N flows, C at a time, everything under one overall deadline, all on 127.0.0.1. ``-s``
prints a one-line throughput summary; nothing asserts on speed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
import yarl
from prometheus_client.parser import text_string_to_metric_families
from support.harness import ALEXA_REDIRECT, PLATFORM_BASIC, PLATFORM_ID, mapping_yaml, query_of, write_gateway_files
from support.processes import GatewayProcess, start_gateway_process
from support.sockets import bound_socket, port_of
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault, Recorded, RecordingUpstream, code_of

from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.state import CodePayload, seal_code

PROVIDER = "fake"
#: 250 flows, 50 at a time: five waves at full concurrency, which is what mixes requests up if
#: anything can (500 took twice the CPU for the same property).
FLOWS = 250
CONCURRENCY = 50
#: The whole load phase must end within this (it takes a few seconds on 2 cores).
DEADLINE = 45.0


@dataclass(frozen=True)
class FlowResult:
    index: int
    state: str
    upstream_code: str
    access_token: str
    refreshed_access_token: str
    statuses: tuple[int, ...]
    instances: tuple[int, ...]  # which gateway served each of the five hops


async def start_gateways(
    tmp_path: Path, fake: RecordingUpstream, count: int, *, token_extra: str = "", keys: list[str] | None = None
) -> list[GatewayProcess]:
    """``count`` ``gateway serve`` processes sharing one config (one public URL, the same keys)."""
    socks = [bound_socket() for _ in range(count)]
    mapping = mapping_yaml(fake, upstream_client_id=DEFAULT_CLIENT_ID, token_extra=token_extra)
    path, env = write_gateway_files(
        tmp_path, {PROVIDER: mapping}, port=port_of(socks[0]), upstream_secret=DEFAULT_CLIENT_SECRET, keys=keys
    )
    # The start-ups overlap; each process serves its own socket (the first one's is the public URL).
    started = await asyncio.gather(*(start_gateway_process(path, sock=sock, env=env) for sock in socks), return_exceptions=True)
    processes = [process for process in started if isinstance(process, GatewayProcess)]
    for failed in started:
        if isinstance(failed, BaseException):
            for process in processes:
                await process.stop()
            raise failed
    return processes


def on(instance: GatewayProcess, url: str) -> yarl.URL:
    """``url`` (a gateway URL, already encoded) sent to ``instance`` instead: a load balancer's choice."""
    parts = urlsplit(url)
    return yarl.URL(f"{instance.url}{parts.path}" + (f"?{parts.query}" if parts.query else ""), encoded=True)


async def one_flow(
    index: int,
    instances: list[GatewayProcess],
    fake: RecordingUpstream,
    connector: aiohttp.BaseConnector,
    platform: aiohttp.ClientSession,
) -> FlowResult:
    """One user linking their account, hop by hop; every hop checked exactly."""
    hops = [(index + hop) % len(instances) for hop in range(5)]
    state = f"flow {index} & more={index * 7}"
    statuses: list[int] = []
    jar = aiohttp.CookieJar(unsafe=True)  # this user's browser
    async with aiohttp.ClientSession(connector=connector, connector_owner=False, cookie_jar=jar) as browser:
        query = urlencode({
            "client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": state,
            "response_type": "code", "scope": "openid profile",
        })
        async with browser.get(f"{instances[hops[0]].url}/{PROVIDER}/authorize?{query}", allow_redirects=False) as response:
            statuses.append(response.status)
            assert response.status == 302, (index, response.status, await response.text())
            to_upstream = response.headers["Location"]
        assert to_upstream.startswith(fake.authorization_endpoint + "?"), to_upstream

        async with browser.get(yarl.URL(to_upstream, encoded=True), allow_redirects=False) as response:
            assert response.status == 302, (index, response.status, await response.text())
            to_callback = response.headers["Location"]
        assert to_callback.startswith(f"{instances[0].url}/{PROVIDER}/callback?"), to_callback
        upstream_code = query_of(to_callback)["code"]

        async with browser.get(on(instances[hops[1]], to_callback), allow_redirects=False) as response:
            statuses.append(response.status)
            assert response.status == 302, (index, response.status, await response.text())
            to_alexa = response.headers["Location"]
    match = re.fullmatch(re.escape(ALEXA_REDIRECT) + r"\?code=([^&#]+)&state=([^&#]*)", to_alexa)
    assert match, (index, to_alexa)
    back = query_of(to_alexa)
    assert back["state"] == state, (index, back["state"])  # its own state: no crossed flows

    form = {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": ALEXA_REDIRECT}
    async with platform.post(
        f"{instances[hops[2]].url}/{PROVIDER}/token", data=form, headers={"Authorization": PLATFORM_BASIC}
    ) as response:
        statuses.append(response.status)
        token = await response.json()
        assert response.status == 200, (index, response.status, token)
        assert response.headers["Cache-Control"] == "no-store"
    assert token["token_type"] == "Bearer" and token["expires_in"] == fake.expires_in, token
    assert code_of(token["access_token"]) == upstream_code, (index, token)  # its own token

    form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    async with platform.post(
        f"{instances[hops[3]].url}/{PROVIDER}/token", data=form, headers={"Authorization": PLATFORM_BASIC}
    ) as response:
        statuses.append(response.status)
        refreshed = await response.json()
        assert response.status == 200, (index, response.status, refreshed)
    assert code_of(refreshed["access_token"]) == upstream_code, (index, refreshed)
    assert refreshed["refresh_token"] != token["refresh_token"]  # the upstream rotated it

    async with platform.get(fake.userinfo_endpoint, headers={"Authorization": f"Bearer {refreshed['access_token']}"}) as response:
        assert response.status == 200, (index, await response.text())  # the token works
        assert (await response.json())["code"] == upstream_code
    return FlowResult(
        index, state, upstream_code, token["access_token"], refreshed["access_token"], tuple(statuses), tuple(hops[:4])
    )


async def run_flows(instances: list[GatewayProcess], fake: RecordingUpstream) -> tuple[list[FlowResult], float]:
    """All flows, ``CONCURRENCY`` at a time, within ``DEADLINE``; every failure reported."""
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    async with aiohttp.ClientSession(connector=connector, connector_owner=False, cookie_jar=aiohttp.DummyCookieJar()) as platform:

        async def gated(index: int) -> FlowResult:
            async with gate:
                return await one_flow(index, instances, fake, connector, platform)

        started = time.monotonic()
        try:
            async with asyncio.timeout(DEADLINE):
                outcomes = await asyncio.gather(*(gated(index) for index in range(FLOWS)), return_exceptions=True)
        finally:
            elapsed = time.monotonic() - started
            await connector.close()
    failures = [(index, outcome) for index, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
    assert not failures, f"{len(failures)} of {FLOWS} flows failed; first ones: {failures[:5]!r}"
    return [outcome for outcome in outcomes if isinstance(outcome, FlowResult)], elapsed


Samples = defaultdict[tuple[str, tuple[tuple[str, str], ...]], float]


async def metrics_of(instances: list[GatewayProcess]) -> Samples:
    """Every instance's samples, summed (a missing sample reads 0)."""
    total: Samples = defaultdict(float)
    async with aiohttp.ClientSession() as client:
        for instance in instances:
            async with client.get(f"{instance.url}/metrics") as response:
                assert response.status == 200
                for family in text_string_to_metric_families(await response.text()):
                    for sample in family.samples:
                        total[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return total


def assert_nothing_lost(results: list[FlowResult], fake: RecordingUpstream, metrics: Samples) -> None:
    assert len(results) == FLOWS
    assert sorted(result.index for result in results) == list(range(FLOWS))
    assert all(result.statuses == (302, 302, 200, 200) for result in results)
    codes = [result.upstream_code for result in results]
    assert len(set(codes)) == FLOWS, "two flows got the same upstream code"
    assert len({result.access_token for result in results} | {result.refreshed_access_token for result in results}) == 2 * FLOWS

    # The upstream saw exactly one code exchange per flow, one refresh per flow, nothing else.
    exchanges = Counter(request.param("code") for request in fake.code_exchanges())
    assert exchanges == Counter(codes), "a code was exchanged twice, or never"
    refreshes = [request for request in fake.token_requests if request.grant_type == "refresh_token"]
    assert len(refreshes) == FLOWS
    assert len(fake.token_requests) == 2 * FLOWS
    assert len([request for request in fake.requests if request.path == "/authorize"]) == FLOWS

    def value(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted({"provider": PROVIDER, **labels}.items())))]

    assert value("gateway_flows_started_total") == FLOWS
    assert value("gateway_flows_completed_total") == FLOWS
    assert value("gateway_requests_total", endpoint="authorize", outcome="success") == FLOWS
    assert value("gateway_requests_total", endpoint="callback", outcome="success") == FLOWS
    assert value("gateway_requests_total", endpoint="token", outcome="success") == 2 * FLOWS
    failures = {labels: count for (name, labels), count in metrics.items() if name == "gateway_upstream_failures_total" and count}
    assert not failures, failures
    other = {
        labels: count
        for (name, labels), count in metrics.items()
        if name == "gateway_requests_total" and count and dict(labels).get("outcome") != "success"
    }
    assert not other, other


def assert_quiet(instances: list[GatewayProcess]) -> None:
    for instance in instances:
        assert "Traceback" not in instance.output, instance.output[-4000:]
        assert "unhandled error" not in instance.output, instance.output[-4000:]


async def test_load_nothing_lost_one_process(tmp_path: Path, fake: RecordingUpstream) -> None:
    """FLOWS complete links, CONCURRENCY at a time, through one ``gateway serve`` process."""
    instances = await start_gateways(tmp_path, fake, 1)
    try:
        results, elapsed = await run_flows(instances, fake)
        assert_nothing_lost(results, fake, await metrics_of(instances))
    finally:
        for instance in instances:
            await instance.stop()
    assert_quiet(instances)
    print(f"\nload, 1 process: {FLOWS} flows ({4 * FLOWS} gateway requests) in {elapsed:.2f}s = {FLOWS / elapsed:.0f} flows/s")


async def test_load_nothing_lost_two_processes_alternating_hops(tmp_path: Path, fake: RecordingUpstream) -> None:
    """The same load over two ``gateway serve`` processes, each flow's consecutive hops on
    alternate processes (authorize on one, callback on the other, code exchange back on the
    first, refresh on the second): statelessness under load."""
    instances = await start_gateways(tmp_path, fake, 2)
    try:
        results, elapsed = await run_flows(instances, fake)
        assert all(result.instances[hop] != result.instances[hop + 1] for result in results for hop in range(3))
        assert_nothing_lost(results, fake, await metrics_of(instances))
        per_instance = await asyncio.gather(*(metrics_of([instance]) for instance in instances))
        for samples in per_instance:  # both processes really carried their half of every hop
            started = samples[("gateway_flows_started_total", (("provider", PROVIDER),))]
            assert started == FLOWS / 2, started
    finally:
        for instance in instances:
            await instance.stop()
    assert_quiet(instances)
    print(f"\nload, 2 processes: {FLOWS} flows ({4 * FLOWS} gateway requests) in {elapsed:.2f}s = {FLOWS / elapsed:.0f} flows/s")


#: Token requests under load while the upstream misbehaves for some of them, chosen by request
#: index: (fault, the status and error the platform must get for it).
MIXED: dict[int, tuple[Fault | None, int, str | None]] = {
    0: (None, 200, None),
    1: (Fault(status=503, body="<html><h1>503</h1></html>", content_type="text/html"), 503, "temporarily_unavailable"),
    2: (Fault(status=400, body={"error": "invalid_grant"}), 400, "invalid_grant"),
    3: (Fault(delay=3.0), 503, "temporarily_unavailable"),  # past the mapping's 1.5 s
    4: (Fault(disconnect="mid_body"), 503, "temporarily_unavailable"),
    5: (Fault(status=200, body="garbage", content_type="text/plain"), 502, "server_error"),
    6: (Fault(chunks=3, chunk_delay=0.02), 200, None),
    7: (Fault(status=401, body={"error": "invalid_client"}), 502, "server_error"),
}
MIXED_REQUESTS = 400


async def test_load_with_a_flaky_upstream_every_answer_goes_to_its_own_request(tmp_path: Path, fake: RecordingUpstream) -> None:
    """MIXED_REQUESTS token requests (code exchanges and refreshes, CONCURRENCY at a time) while
    the upstream answers some of them with outages, timeouts, cut connections, garbage and grant
    errors: every platform request gets the answer for *its own* upstream answer (a token from its
    own lineage, or its own fault's error), one upstream request each, and no 500."""
    key = generate_key()
    instances = await start_gateways(tmp_path, fake, 1, token_extra="timeout: 1.5", keys=[key])  # every prompt answer well inside it, even on a busy machine
    callback_url = f"{instances[0].url}/{PROVIDER}/callback"
    sealer = Sealer([key])
    forms: list[dict[str, str]] = []
    lineage: list[str] = []  # the upstream code each request's token must descend from
    plan: dict[str, int] = {}  # what the upstream receives (code or refresh token) → request index
    for index in range(MIXED_REQUESTS):
        if index % 2:
            refresh_token = fake.issue_refresh_token(redirect_uri=callback_url)
            forms.append({"grant_type": "refresh_token", "refresh_token": refresh_token})
            lineage.append(code_of(refresh_token))
            plan[refresh_token] = index
        else:
            code = fake.issue_code(callback_url)
            sealed = seal_code(sealer, CodePayload(code, PLATFORM_ID, ALEXA_REDIRECT, PROVIDER), ttl=300)
            forms.append({"grant_type": "authorization_code", "code": sealed, "redirect_uri": ALEXA_REDIRECT})
            lineage.append(code)
            plan[code] = index

    def fault_for(received: Recorded) -> Fault | None:
        index = plan[received.param("code") or received.param("refresh_token") or ""]
        return MIXED[index % len(MIXED)][0]

    fake.fault_for = fault_for
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(platform: aiohttp.ClientSession, index: int) -> None:
        async with gate:
            async with platform.post(
                f"{instances[0].url}/{PROVIDER}/token", data=forms[index], headers={"Authorization": PLATFORM_BASIC}
            ) as response:
                body = await response.json()
                status = response.status
                assert response.headers["Cache-Control"] == "no-store"
        _, expected_status, expected_error = MIXED[index % len(MIXED)]
        assert (status, body.get("error")) == (expected_status, expected_error), (index, status, body)
        if expected_error is None:
            assert code_of(body["access_token"]) == lineage[index], (index, body)  # its own token, not a neighbour's

    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as platform:
            async with asyncio.timeout(DEADLINE):
                outcomes = await asyncio.gather(*(one(platform, index) for index in range(MIXED_REQUESTS)), return_exceptions=True)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.2)  # a retry, had there been one, would have arrived by now
        failures = [(index, outcome) for index, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
        assert not failures, f"{len(failures)} of {MIXED_REQUESTS} requests went wrong; first ones: {failures[:5]!r}"
        received = Counter(plan[r.param("code") or r.param("refresh_token") or ""] for r in fake.token_requests)
        assert received == Counter(range(MIXED_REQUESTS)), "an upstream request was retried, duplicated or lost"
        metrics = await metrics_of(instances)
    finally:
        for instance in instances:
            await instance.stop()
    assert_quiet(instances)
    per_kind = {
        dict(labels)["kind"]: count
        for (name, labels), count in metrics.items()
        if name == "gateway_upstream_failures_total" and count  # every kind is declared at 0
    }
    share = MIXED_REQUESTS // len(MIXED)
    assert per_kind == {
        "http_5xx": share, "timeout": share, "connection": share, "unusable_answer": share, "refused": share
    }, per_kind
    print(f"\nload, flaky upstream: {MIXED_REQUESTS} token requests in {elapsed:.2f}s = {MIXED_REQUESTS / elapsed:.0f} requests/s")
