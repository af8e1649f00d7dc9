"""`gateway linktest` against a gateway that is down, not ready, or serving other providers: each
is named as such, and the test stops there (no authorize or token check against a dead end)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from support.sockets import refusing_port, start_site

from gateway.cli.linktest import Check, run_linktest
from gateway.config.settings import Config, load_config
from gateway.oauth.seal import generate_key

MAPPING = """\
platform: {profile: alexa, client_id: skill, client_secret: skill-secret-1}
upstream:
  client_id: gw
  client_secret: gw-secret
  authorize: {url: "https://auth.example/authorize"}
  token: {url: "https://auth.example/token"}
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "acme.yaml").write_text(MAPPING)
    (tmp_path / "gateway.yaml").write_text(f"keys: ['{generate_key()}']\npublic_url: http://127.0.0.1:9\ncookie: {{secure: false}}\n")
    return load_config(tmp_path / "gateway.yaml")


async def readyz_server(status: int, text: str) -> AsyncIterator[str]:
    """A stand-in for a gateway whose /readyz answers ``status`` with ``text``."""

    async def readyz(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text)

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        yield await start_site(runner)
    finally:
        await runner.cleanup()


def only(checks: list[Check]) -> list[tuple[str, str]]:
    return [(check.name, check.verdict) for check in checks]


def detail(checks: list[Check], name: str) -> str:
    return next(check.detail for check in checks if check.name == name)


async def test_a_gateway_that_is_down_is_named_and_nothing_else_is_tried(config: Config) -> None:
    checks = await run_linktest(config, "acme", base_url=f"http://127.0.0.1:{refusing_port()}")
    assert only(checks) == [("tls", "WARN"), ("ready", "FAIL")]
    assert "/readyz can not be reached" in detail(checks, "ready")


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (503, "starting\n", "/readyz answered 503: the gateway is not ready"),
        (200, "ready: other, more\n", "the gateway does not serve 'acme' (it serves other, more)"),
    ],
    ids=["not-ready", "other-providers"],
)
async def test_a_gateway_not_ready_for_the_provider_is_named(config: Config, status: int, text: str, expected: str) -> None:
    async for url in readyz_server(status, text):
        checks = await run_linktest(config, "acme", base_url=url)
    assert only(checks) == [("tls", "WARN"), ("ready", "FAIL")]
    assert detail(checks, "ready") == expected


async def test_an_unknown_provider_is_a_config_finding(config: Config) -> None:
    checks = await run_linktest(config, "nope")
    assert only(checks) == [("config", "FAIL")] and "known: acme" in checks[0].detail


async def test_a_mapping_without_an_exact_redirect_uri_skips_the_authorize_check(config: Config) -> None:
    mapping = config.providers["acme"]
    patterns_only = dataclasses.replace(config, providers={
        "acme": dataclasses.replace(mapping, platform=dataclasses.replace(mapping.platform, sample_redirect_uri=None)),
    })
    async for url in readyz_server(200, "ready: acme\n"):
        checks = await run_linktest(patterns_only, "acme", base_url=url)
    assert ("authorize", "WARN") in only(checks)
    assert "no exact redirect URI to try" in detail(checks, "authorize")
