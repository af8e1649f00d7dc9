"""A code is redeemed once (RFC 6749 §4.1.2), even in front of an upstream that would accept it twice.

The upstream here is deliberately non-compliant: it answers a token for any code, as often as
asked. The gateway's own guard (gateway/oauth/replay.py) must then be what refuses a replay, without
the replay ever reaching the upstream; and a failed exchange must not burn the code.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from support.builders import plain_mapping
from support.harness import ALEXA_REDIRECT, PLATFORM_BASIC, PLATFORM_ID, Gateway, start_gateway
from support.upstream import RecordingUpstream, Reply

from gateway.oauth.seal import Sealer
from gateway.oauth.state import CodePayload, seal_code

#: The lax upstream's answer: a token for any code, as often as asked (the built-in single use is off).
LAX_TOKEN = Reply(body={"access_token": "at-lax", "token_type": "bearer", "expires_in": 60})


@pytest.fixture
async def lax(tmp_path: Path) -> AsyncIterator[tuple[RecordingUpstream, Gateway]]:
    async with RecordingUpstream() as upstream:
        upstream.fault = LAX_TOKEN
        gateway = await start_gateway(tmp_path, {"oidc": plain_mapping(upstream.token_endpoint)})
        yield upstream, gateway
        await gateway.runner.cleanup()


def codes_sent(upstream: RecordingUpstream) -> list[str | None]:
    """The upstream code of each token request that reached the upstream (None: not a code exchange)."""
    return [request.param("code") if request.grant_type == "authorization_code" else None for request in upstream.token_requests]


def sealed_code(gateway: Gateway, upstream_code: str = "up-code") -> str:
    return seal_code(Sealer(gateway.config.keys), CodePayload(upstream_code, PLATFORM_ID, ALEXA_REDIRECT, "oidc"), ttl=300)


async def redeem(gateway: Gateway, code: str) -> tuple[int, dict[str, str]]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT}
    async with aiohttp.ClientSession() as platform:
        async with platform.post(f"{gateway.url}/oidc/token", data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
            return response.status, await response.json()


async def test_a_replayed_code_is_refused_without_reaching_the_upstream(lax: tuple[RecordingUpstream, Gateway]) -> None:
    upstream, gateway = lax
    code = sealed_code(gateway)
    assert (await redeem(gateway, code))[0] == 200
    status, body = await redeem(gateway, code)
    assert (status, body["error"], body["error_description"]) == (400, "invalid_grant", "code was already used")
    # The same code with bytes after its padding opens like the original: still the same code.
    assert (await redeem(gateway, code + "x"))[1].get("error") in {"invalid_grant"}
    assert codes_sent(upstream) == ["up-code"]


async def test_a_failed_exchange_does_not_burn_the_code(lax: tuple[RecordingUpstream, Gateway]) -> None:
    upstream, gateway = lax
    upstream.faults.append(Reply(status=503, body="down for maintenance", content_type="text/plain"))
    code = sealed_code(gateway)
    status, body = await redeem(gateway, code)
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    status, body = await redeem(gateway, code)
    assert status == 200, body
    assert codes_sent(upstream) == ["up-code", "up-code"]


async def test_two_redemptions_at_once_reach_the_upstream_once(lax: tuple[RecordingUpstream, Gateway]) -> None:
    upstream, gateway = lax
    upstream.fault = dataclasses.replace(LAX_TOKEN, delay=0.3)
    code = sealed_code(gateway)
    results = await asyncio.gather(redeem(gateway, code), redeem(gateway, code))
    assert sorted(status for status, _ in results) == [200, 400]
    assert codes_sent(upstream) == ["up-code"]


async def test_different_codes_are_independent(lax: tuple[RecordingUpstream, Gateway]) -> None:
    upstream, gateway = lax
    for index in range(3):
        assert (await redeem(gateway, sealed_code(gateway, f"code-{index}")))[0] == 200
    assert codes_sent(upstream) == ["code-0", "code-1", "code-2"]
