"""A code is redeemed once (RFC 6749 §4.1.2), even in front of an upstream that would accept it twice.

The upstream here is deliberately non-compliant: it answers a token for any code, as often as
asked. The gateway's own guard (gateway/oauth/replay.py) must then be what refuses a replay, without
the replay ever reaching the upstream; and a failed exchange must not burn the code.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from builders import plain_mapping
from conftest import ALEXA_REDIRECT, PLATFORM_ID, PLATFORM_SECRET, Gateway, start_gateway
from listening import start_site

from gateway.oauth.seal import Sealer
from gateway.web.handlers.callback import CODE_PURPOSE

BASIC = "Basic " + base64.b64encode(f"{PLATFORM_ID}:{PLATFORM_SECRET}".encode()).decode()


class LaxUpstream:
    """Answers every token request with a token; ``fail_next`` makes the next answers 503s."""

    def __init__(self) -> None:
        self.requests = 0
        self.fail_next = 0
        self.delay = 0.0

    async def token(self, request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=503, text="down for maintenance")
        return web.json_response({"access_token": f"at-{self.requests}", "token_type": "bearer", "expires_in": 60})


@pytest.fixture
async def lax(tmp_path: Path) -> AsyncIterator[tuple[LaxUpstream, Gateway]]:
    upstream = LaxUpstream()
    app = web.Application()
    app.router.add_post("/token", upstream.token)
    runner = web.AppRunner(app)
    await runner.setup()
    base = await start_site(runner)
    gateway = await start_gateway(tmp_path, {"oidc": plain_mapping(f"{base}/token")})
    yield upstream, gateway
    await gateway.runner.cleanup()
    await runner.cleanup()


def sealed_code(gateway: Gateway, upstream_code: str = "up-code") -> str:
    payload = {"u": upstream_code, "c": PLATFORM_ID, "r": ALEXA_REDIRECT, "p": "oidc"}
    return Sealer(gateway.config.keys).seal(CODE_PURPOSE, payload, ttl=300)


async def redeem(gateway: Gateway, code: str) -> tuple[int, dict[str, str]]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT}
    async with aiohttp.ClientSession() as platform:
        async with platform.post(f"{gateway.url}/oidc/token", data=form, headers={"Authorization": BASIC}) as response:
            return response.status, await response.json()


async def test_a_replayed_code_is_refused_without_reaching_the_upstream(lax: tuple[LaxUpstream, Gateway]) -> None:
    upstream, gateway = lax
    code = sealed_code(gateway)
    assert (await redeem(gateway, code))[0] == 200
    status, body = await redeem(gateway, code)
    assert (status, body["error"], body["error_description"]) == (400, "invalid_grant", "code was already used")
    # The same code with bytes after its padding opens like the original: still the same code.
    assert (await redeem(gateway, code + "x"))[1].get("error") in {"invalid_grant"}
    assert upstream.requests == 1


async def test_a_failed_exchange_does_not_burn_the_code(lax: tuple[LaxUpstream, Gateway]) -> None:
    upstream, gateway = lax
    upstream.fail_next = 1
    code = sealed_code(gateway)
    status, body = await redeem(gateway, code)
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    status, body = await redeem(gateway, code)
    assert status == 200, body
    assert upstream.requests == 2


async def test_two_redemptions_at_once_reach_the_upstream_once(lax: tuple[LaxUpstream, Gateway]) -> None:
    upstream, gateway = lax
    upstream.delay = 0.3
    code = sealed_code(gateway)
    results = await asyncio.gather(redeem(gateway, code), redeem(gateway, code))
    assert sorted(status for status, _ in results) == [200, 400]
    assert upstream.requests == 1


async def test_different_codes_are_independent(lax: tuple[LaxUpstream, Gateway]) -> None:
    upstream, gateway = lax
    for index in range(3):
        assert (await redeem(gateway, sealed_code(gateway, f"code-{index}")))[0] == 200
    assert upstream.requests == 3
