"""``gateway linktest`` finds the usual causes of a failed link, from the outside.

Each test breaks one thing in a real setup (gateway + oidc-provider on 127.0.0.1) and checks that
the link tester names it — and that a healthy setup gets no FAIL at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from pathlib import Path

import pytest
from support.builders import plain_mapping, self_signed
from support.harness import Gateway, GatewayFactory, mapping_yaml, start_gateway, write_gateway_files
from support.oidc_provider import OidcUpstream
from support.processes import start_gateway_process
from support.sockets import bound_socket, port_of, refusing_port
from support.upstream import RecordingUpstream, Reply

from gateway.cli.commands import main
from gateway.cli.linktest import Check, run_linktest
from gateway.config.settings import load_config


def verdicts(checks: list[Check]) -> dict[str, str]:
    return {check.name: check.verdict for check in checks}


def failure(checks: list[Check], name: str) -> str:
    found = [check.detail for check in checks if check.name == name and check.verdict == "FAIL"]
    assert found, [str(check) for check in checks]
    return found[0]


async def test_a_healthy_link_has_no_failure(gateway: Gateway) -> None:
    checks = await run_linktest(gateway.config, "oidc")
    assert verdicts(checks) == {
        "tls": "WARN",  # plain http on 127.0.0.1
        "ready": "PASS",
        "authorize": "PASS",
        "upstream authorize": "PASS",
        "client authentication": "PASS",
        "token": "PASS",
        "upstream token": "PASS",
    }, [str(check) for check in checks]


async def test_wrong_upstream_credentials_are_named(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(upstream_secret="not-what-the-upstream-knows")
    checks = await run_linktest(gateway.config, "oidc")
    assert "check upstream.client_id, upstream.client_secret" in failure(checks, "upstream token")


async def test_wrong_platform_credentials_are_named(gateway: Gateway) -> None:
    """The skill is configured with another secret than the gateway's mapping."""
    mapping = gateway.config.providers["oidc"]
    skill = dataclasses.replace(mapping, platform=dataclasses.replace(mapping.platform, client_secret="the-skill-has-this"))
    config = dataclasses.replace(gateway.config, providers={"oidc": skill})
    assert "client id or secret is refused" in failure(await run_linktest(config, "oidc"), "token")


async def test_a_callback_the_upstream_does_not_know(tmp_path: Path, upstream: OidcUpstream) -> None:
    """The gateway's callback is not the one registered at the upstream (which knows only
    ``/oidc/callback``, on any loopback port): the mapping is served under another name."""
    gateway = await start_gateway(tmp_path, {"elsewhere": mapping_yaml(upstream)})
    try:
        detail = failure(await run_linktest(gateway.config, "elsewhere"), "upstream authorize")
        assert f"register {gateway.url}/elsewhere/callback at the provider" in detail
    finally:
        await gateway.runner.cleanup()


async def test_an_unknown_provider_and_an_unreachable_gateway(gateway: Gateway) -> None:
    assert verdicts(await run_linktest(gateway.config, "nope")) == {"config": "FAIL"}
    checks = await run_linktest(gateway.config, "oidc", base_url=f"http://127.0.0.1:{refusing_port()}")
    assert "can not be reached" in failure(checks, "ready")


async def test_an_untrusted_certificate_chain(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    sock = bound_socket()
    port = port_of(sock)
    path, env = write_gateway_files(
        tmp_path, {"oidc": plain_mapping("http://127.0.0.1:9/token")}, port=port, more=f"tls: {{cert: {cert}, key: {key}}}\n"
    )
    trust = ssl.create_default_context(cafile=str(cert))
    process = await start_gateway_process(path, sock=sock, env=env, ssl_context=trust)
    try:
        config = load_config(path, env=env)
        base = f"https://127.0.0.1:{port}"
        untrusted = await run_linktest(config, "oidc", base_url=base)
        assert "full chain" in failure(untrusted, "tls")
        trusted = await run_linktest(config, "oidc", base_url=base, ssl_context=trust)
        tls = next(check for check in trusted if check.name == "tls" and check.verdict != "PASS")
        assert tls.verdict == "WARN" and f"port {port}" in tls.detail  # Alexa only calls 443
        assert verdicts(trusted)["ready"] == "PASS"
    finally:
        await process.stop()


async def test_the_command(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = Path(gateway.config.file)
    env_file_free = config_file.read_text()  # the mapping reads secrets from the environment
    assert "${" not in env_file_free
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLATFORM_SECRET", gateway.config.providers["oidc"].platform.client_secret)
        patch.setenv("UPSTREAM_SECRET", gateway.config.providers["oidc"].upstream_client_secret)
        code = await _run_main(["linktest", "oidc", "--config", str(config_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no problem found" in out and "PASS  upstream token" in out


async def _run_main(argv: list[str]) -> int:
    """``main`` runs its own event loop; run it in a thread beside the test's loop."""
    return await asyncio.get_running_loop().run_in_executor(None, main, argv)


async def test_a_redirect_uri_error_on_a_200_page(tmp_path: Path) -> None:
    """GitHub shows "The redirect_uri MUST match the registered callback URL" with HTTP 200."""

    page = Reply(body="<h1>Error</h1><p>The redirect_uri MUST match the registered callback URL.</p>", content_type="text/html")
    async with RecordingUpstream() as upstream:
        upstream.answer("/authorize", page)
        mapping = plain_mapping("http://127.0.0.1:9/token").replace("https://auth.example/authorize", upstream.authorization_endpoint)
        gateway = await start_gateway(tmp_path, {"oidc": mapping})
        try:
            checks = await run_linktest(gateway.config, "oidc")
            warning = next(check for check in checks if check.name == "upstream authorize")
            assert warning.verdict == "WARN" and "is http://127.0.0.1" in warning.detail, warning
            assert upstream.only("/authorize").method == "GET"  # the page was asked for
        finally:
            await gateway.runner.cleanup()
