"""Running it in production: key rotation, statelessness across instances, metrics, logs,
request ids, graceful SIGTERM, SIGHUP reload, TLS.

In-process gateways where the test needs to look inside (logs, reload); ``gateway serve``
subprocesses where the operating system is part of the behaviour (signals, several processes, TLS).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.builders import plain_mapping, self_signed
from support.harness import (
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    PLATFORM_SECRET,
    UPSTREAM_SECRET,
    Gateway,
    GatewayFactory,
    link,
    mapping_yaml,
    query_of,
    write_gateway_files,
)
from support.oauth import basic
from support.oidc_provider import OidcUpstream, login_and_consent
from support.processes import GatewayProcess, start_gateway_process
from support.sockets import bound_socket, port_of, refusing_port
from support.upstream import RecordingUpstream, Reply

from gateway.config.settings import load_config
from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.state import CodePayload, open_code, seal_code
from gateway.observe.logs import JsonFormatter
from gateway.web.app import reload_config


async def exchange(platform: aiohttp.ClientSession, url: str, form: dict[str, str], auth: str = PLATFORM_BASIC) -> tuple[int, dict[str, str]]:
    async with platform.post(f"{url}/oidc/token", data=form, headers={"Authorization": auth}) as response:
        return response.status, await response.json()


def code_form(code: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT}


# -- key rotation ---------------------------------------------------------------------------------


async def test_rotating_a_key_in_keeps_flows_in_flight(
    tmp_path: Path, make_gateway: GatewayFactory, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """authorize under [A]; callback and token under [B, A]; then A retired: a clear error."""
    key_a, key_b = generate_key(), generate_key()
    gateway = await make_gateway(keys=[key_a])
    callback = await login_and_consent(browser, gateway.authorize_url(), stop_at_prefix=gateway.endpoint("callback"))

    def reload_with(keys: list[str]) -> None:
        text = (tmp_path / "gateway.yaml").read_text()
        lines = [f"keys: [{', '.join(repr(k) for k in keys)}]" if line.startswith("keys:") else line for line in text.splitlines()]
        (tmp_path / "gateway.yaml").write_text("\n".join(lines) + "\n")
        config = load_config(tmp_path / "gateway.yaml", env={"PLATFORM_SECRET": PLATFORM_SECRET, "UPSTREAM_SECRET": UPSTREAM_SECRET})
        assert reload_config(gateway.runner.app, config) == []

    reload_with([key_b, key_a])  # the cookie in the browser was sealed under A
    async with browser.get(str(callback), allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        code = query_of(response.headers["Location"])["code"]
    open_code(Sealer([key_b]), code)  # the new code is sealed under B, the first key
    status, token = await exchange(platform, gateway.url, code_form(code))
    assert status == 200, token

    old_code = seal_code(Sealer([key_a]), open_code(Sealer([key_b]), code), ttl=300)
    reload_with([key_b])  # A retired
    status, body = await exchange(platform, gateway.url, code_form(old_code))
    assert status == 400
    assert body["error"] == "invalid_grant"
    assert "retired key" in body["error_description"]


async def test_keys_file(tmp_path: Path) -> None:
    key_a, key_b = generate_key(), generate_key()
    (tmp_path / "keys").write_text(f"# rotated 2026-11-25\n{key_b}\n{key_a}\n")
    path, env = write_gateway_files(
        tmp_path, {"m": plain_mapping("http://127.0.0.1:9/token")}, port=1, keys=[], more="keys_file: keys\n"
    )
    config = load_config(path, env=env)
    assert config.keys == (key_b, key_a)
    assert not config.ephemeral_key


# -- several instances ----------------------------------------------------------------------------


async def test_two_instances_serve_one_flow_hop_by_hop(
    tmp_path: Path, gateway_socket: socket.socket, upstream: OidcUpstream, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    """Two ``gateway serve`` processes with one config behind an imaginary load balancer: every
    hop of a flow (authorize, callback, token, refresh) lands on the other instance, and it works."""
    path, env = write_gateway_files(tmp_path, {"oidc": mapping_yaml(upstream)}, port=port_of(gateway_socket))
    first, second = await asyncio.gather(
        start_gateway_process(path, sock=gateway_socket, env=env), start_gateway_process(path, sock=bound_socket(), env=env)
    )
    try:
        instances = [first, second]
        for flow in range(3):
            hop = flow % 2

            def on(instance: GatewayProcess, url: str) -> str:
                parts = urlsplit(url)
                return f"{instance.url}{parts.path}?{parts.query}" if parts.query else f"{instance.url}{parts.path}"

            query = urlencode({
                "client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": f"flow-{flow}",
                "response_type": "code", "scope": "openid profile",
            })
            authorize = f"{instances[hop].url}/oidc/authorize?{query}"
            callback = await login_and_consent(browser, authorize, stop_at_prefix=f"{first.url}/oidc/callback")
            async with browser.get(on(instances[1 - hop], str(callback)), allow_redirects=False) as response:
                assert response.status == 302, await response.text()
                back = query_of(response.headers["Location"])
            assert back["state"] == f"flow-{flow}"
            status, token = await exchange(platform, instances[hop].url, code_form(back["code"]))
            assert status == 200, token
            status, refreshed = await exchange(
                platform, instances[1 - hop].url, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
            )
            assert status == 200, refreshed
    finally:
        await first.stop()
        await second.stop()


# -- metrics ---------------------------------------------------------------------------------------


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_count_flows_outcomes_and_upstream_calls(
    gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession
) -> None:
    back = await link(browser, gateway)
    status, token = await exchange(platform, gateway.url, code_form(back["code"]))
    assert status == 200
    assert (await exchange(platform, gateway.url, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}))[0] == 200
    wrong = basic(PLATFORM_ID, "wrong")
    assert (await exchange(platform, gateway.url, code_form(back["code"]), auth=wrong))[0] == 401
    assert (await exchange(platform, gateway.url, code_form(back["code"])))[0] == 400  # reused: invalid_grant
    denied = await login_and_consent(browser, gateway.authorize_url(), stop_at_prefix="https://pitangui.amazon.com/", deny=True)
    assert query_of(denied)["error"] == "access_denied"

    async with platform.get(f"{gateway.url}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        samples = scrape(await response.text())

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    oidc = {"provider": "oidc"}
    assert value("gateway_requests_total", endpoint="authorize", outcome="success", **oidc) == 2
    assert value("gateway_requests_total", endpoint="callback", outcome="success", **oidc) == 1
    assert value("gateway_requests_total", endpoint="callback", outcome="access_denied", **oidc) == 1
    assert value("gateway_requests_total", endpoint="token", outcome="success", **oidc) == 2
    assert value("gateway_requests_total", endpoint="token", outcome="invalid_client", **oidc) == 1
    assert value("gateway_requests_total", endpoint="token", outcome="invalid_grant", **oidc) == 1
    assert value("gateway_flows_started_total", **oidc) == 2
    assert value("gateway_flows_completed_total", **oidc) == 1
    assert value("gateway_upstream_request_duration_seconds_count", **oidc) == 2  # code, refresh; the reused code never left
    assert value("gateway_build_info", version="0.1.0", python=__import__("platform").python_version()) == 1


async def test_metrics_count_upstream_failures_by_kind(
    make_gateway: GatewayFactory, platform: aiohttp.ClientSession
) -> None:
    gateway = await make_gateway(token_url=f"http://127.0.0.1:{refusing_port()}/token")  # nobody listens
    code = seal_code(Sealer(gateway.config.keys), CodePayload("x", PLATFORM_ID, ALEXA_REDIRECT, "oidc"), ttl=60)
    status, body = await exchange(platform, gateway.url, code_form(code))
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    async with platform.get(f"{gateway.url}/metrics") as response:
        samples = scrape(await response.text())
    assert samples[("gateway_upstream_failures_total", (("kind", "connection"), ("provider", "oidc")))] == 1
    assert samples[("gateway_requests_total", (("endpoint", "token"), ("outcome", "temporarily_unavailable"), ("provider", "oidc")))] == 1


# -- logs ------------------------------------------------------------------------------------------


async def test_no_secret_ever_reaches_a_log(
    gateway: Gateway, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Every flow, with known secrets; then every log record, formatted as JSON with all its
    fields, is searched for each secret: zero hits."""
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [PLATFORM_SECRET, UPSTREAM_SECRET, PLATFORM_BASIC, *gateway.config.keys]

    callback = await login_and_consent(browser, gateway.authorize_url(), stop_at_prefix=gateway.endpoint("callback"))
    secrets.append(query_of(callback)["code"])  # the upstream's code
    secrets += [cookie.value for cookie in browser.cookie_jar if cookie.key == "gateway_flow"]
    async with browser.get(str(callback), allow_redirects=False) as response:
        code = query_of(response.headers["Location"])["code"]
    secrets.append(code)
    status, token = await exchange(platform, gateway.url, code_form(code))
    assert status == 200
    status, refreshed = await exchange(platform, gateway.url, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert status == 200
    secrets += [token["access_token"], token["refresh_token"], refreshed["access_token"], refreshed["refresh_token"]]
    await exchange(platform, gateway.url, code_form(code))  # reused
    await exchange(platform, gateway.url, code_form("garbage"))
    await login_and_consent(browser, gateway.authorize_url(), stop_at_prefix="https://pitangui.amazon.com/", deny=True)

    formatter = JsonFormatter()
    output = "\n".join(formatter.format(record) for record in caplog.records)
    assert "gateway.request" in output  # the request lines were captured
    assert len(secrets) >= 11
    for secret in secrets:
        assert secret and secret not in output, "a secret reached the log"


async def test_request_id_is_taken_or_made_and_returned(gateway: Gateway, platform: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.request")
    async with platform.get(f"{gateway.url}/healthz", headers={"X-Request-Id": "lb-1234"}) as response:
        assert response.headers["X-Request-Id"] == "lb-1234"
    async with platform.get(f"{gateway.url}/healthz", headers={"X-Request-Id": "bad id\twith tab"}) as response:
        made = response.headers["X-Request-Id"]
    assert len(made) == 32 and made != "bad id\twith tab"
    async with platform.post(f"{gateway.url}/oidc/token", data={"grant_type": "x"}) as response:
        token_id = response.headers["X-Request-Id"]
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records if record.name == "gateway.request"]
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["lb-1234"]["path"] == "/healthz"
    assert by_id[token_id] | {"ms": 0} == by_id[token_id] | {
        "ms": 0, "provider": "oidc", "endpoint": "token", "outcome": "invalid_client", "status": 401
    }


# -- lifecycle -------------------------------------------------------------------------------------


@pytest.fixture
async def slow_upstream() -> AsyncIterator[RecordingUpstream]:
    """A token endpoint that takes 1.5 s (any code); records each request as it arrives."""
    async with RecordingUpstream() as upstream:
        upstream.fault = Reply(body={"access_token": "slow-at", "token_type": "bearer", "expires_in": 60}, delay=1.5)
        yield upstream


async def test_sigterm_finishes_requests_in_flight_then_exits_0(
    tmp_path: Path, slow_upstream: RecordingUpstream, platform: aiohttp.ClientSession
) -> None:
    token_url = slow_upstream.token_endpoint
    key = generate_key()
    sock = bound_socket()
    path, env = write_gateway_files(tmp_path, {"oidc": plain_mapping(token_url)}, port=port_of(sock), keys=[key])
    gateway = await start_gateway_process(path, sock=sock, env=env)
    try:
        code = seal_code(Sealer([key]), CodePayload("x", PLATFORM_ID, ALEXA_REDIRECT, "oidc"), ttl=60)
        in_flight = asyncio.create_task(exchange(platform, gateway.url, code_form(code)))
        await slow_upstream.wait_for(timeout=10)  # the request is in flight (the wait has a deadline)
        gateway.signal(signal.SIGTERM)
        async with asyncio.timeout(5), aiohttp.ClientSession() as fresh:  # until it no longer accepts
            while True:
                try:
                    async with fresh.get(f"{gateway.url}/healthz", headers={"Connection": "close"}):
                        pass
                except aiohttp.ClientConnectionError:
                    break
                await asyncio.sleep(0.02)
        status, body = await in_flight
        assert status == 200, body
        assert body["access_token"] == "slow-at"
        assert await gateway.wait() == 0
    finally:
        await gateway.stop()


async def test_sighup_reloads_and_a_broken_config_keeps_the_old_one(tmp_path: Path, platform: aiohttp.ClientSession) -> None:
    sock = bound_socket()
    path, env = write_gateway_files(tmp_path, {"first": plain_mapping("http://127.0.0.1:9/token")}, port=port_of(sock))
    gateway = await start_gateway_process(path, sock=sock, env=env)
    try:
        (tmp_path / "mappings" / "second.yaml").write_text(plain_mapping("http://127.0.0.1:9/token"))
        gateway.signal(signal.SIGHUP)
        await gateway.wait_for_line("reloaded")
        async with platform.get(f"{gateway.url}/readyz") as response:
            assert await response.text() == "ready: first, second\n"

        (tmp_path / "mappings" / "second.yaml").write_text(plain_mapping("http://127.0.0.1:9/token") + "  bogus: 1\n")
        gateway.signal(signal.SIGHUP)
        await gateway.wait_for_line("still serving the previous config")
        assert "second.yaml:10: upstream.bogus: unknown key" in gateway.output
        async with platform.get(f"{gateway.url}/readyz") as response:
            assert await response.text() == "ready: first, second\n"
        url = f"{gateway.url}/second/authorize?client_id={PLATFORM_ID}&response_type=code&redirect_uri={ALEXA_REDIRECT}"
        async with platform.get(url, allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"].startswith("https://auth.example/authorize?")
    finally:
        await gateway.stop()


# -- TLS -------------------------------------------------------------------------------------------


async def test_tls_from_the_config(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    sock = bound_socket()
    port = port_of(sock)
    path, env = write_gateway_files(
        tmp_path, {"oidc": plain_mapping("http://127.0.0.1:9/token")}, port=port, more=f"tls: {{cert: {cert}, key: {key}}}\n"
    )
    trust = ssl.create_default_context(cafile=str(cert))
    gateway = await start_gateway_process(path, sock=sock, env=env, ssl_context=trust)
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"https://127.0.0.1:{port}/healthz", ssl=trust) as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                    await response.read()
    finally:
        await gateway.stop()
