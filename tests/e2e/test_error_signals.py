"""What the platform and ``gateway linktest`` read from an error: RFC 6749 §5.2 text and a machine signal.

* A description the upstream sends the user back with is relayed to the platform in the §5.2
  character set (no ``"``, ``\\``, section sign or other non-ASCII), like the gateway's own.
* ``gateway linktest`` tells "the upstream refused the gateway's own request" from the
  ``Gateway-Upstream-Failure`` header the gateway sets, not from the wording of the description:
  a stand-in gateway that words it differently, or words it the same without the header, is read
  by the header alone.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from support.harness import Gateway, query_of
from support.oidc_provider import login_and_consent
from support.sockets import start_site

from gateway.cli.linktest import Check, run_linktest
from gateway.oauth.basicauth import basic_auth_header
from gateway.observe.reasons import REFUSED
from gateway.upstream.failure import FAILURE_HEADER

SECTION_5_2 = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


async def test_an_upstream_error_description_is_relayed_in_the_section_5_2_set(
    gateway: Gateway, browser: aiohttp.ClientSession
) -> None:
    callback = await login_and_consent(browser, gateway.authorize_url(), stop_at_prefix=gateway.endpoint("callback"))
    refused = callback.with_query(
        state=callback.query["state"], error="access_denied", error_description='Zoë said "no" \\ see §3 ✓'
    )
    async with browser.get(str(refused), allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        sent = query_of(response.headers["Location"])
    assert sent["error"] == "access_denied" and sent["state"] == "alexa-state-123"
    assert sent["error_description"] == "Zoe said 'no' / see section 3 ?"
    assert SECTION_5_2.fullmatch(sent["error_description"])


Answer = Callable[[], web.Response]


@pytest.fixture
async def stand_in() -> AsyncIterator[Callable[[Answer], str]]:
    """A stand-in gateway: healthy, serving ``oidc``, whose refresh answer the test chooses."""
    runners: list[web.AppRunner] = []
    answers: list[Answer] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if "not-the-secret" in str(request.headers.get("Authorization", "")) or form.get("refresh_token") == "x":
            return web.json_response({"error": "invalid_client"}, status=401, headers={"WWW-Authenticate": "Basic", "Cache-Control": "no-store"})
        if form.get("grant_type") == "authorization_code":
            return web.json_response({"error": "invalid_grant"}, status=400, headers={"Cache-Control": "no-store"})
        return answers[-1]()

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        return web.Response(text="ready: oidc")

    async def authorize(request: web.Request) -> web.Response:
        return web.Response(status=400, text="no")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/oidc/authorize", authorize)
    app.router.add_post("/oidc/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    runners.append(runner)
    url = await start_site(runner)

    def serve(answer: Answer) -> str:
        answers.append(answer)
        return url

    yield serve
    for each in runners:
        await each.cleanup()


def upstream_token(checks: list[Check]) -> Check:
    return next(check for check in checks if check.name == "upstream token")


def server_error(description: str, **headers: str) -> Answer:
    return lambda: web.json_response(
        {"error": "server_error", "error_description": description}, status=502, headers={"Cache-Control": "no-store", **headers}
    )


async def test_linktest_reads_the_refusal_from_the_header_not_the_words(
    gateway: Gateway, stand_in: Callable[[Answer], str]
) -> None:
    url = stand_in(server_error("worded quite differently", **{FAILURE_HEADER: "refused"}))
    check = upstream_token(await run_linktest(gateway.config, "oidc", base_url=url))
    assert check.verdict == "FAIL" and check.detail.startswith(REFUSED), check


async def test_the_old_wording_without_the_header_is_not_read_as_a_refusal(
    gateway: Gateway, stand_in: Callable[[Answer], str]
) -> None:
    url = stand_in(server_error("upstream refused the gateway's own request (invalid_client)"))
    check = upstream_token(await run_linktest(gateway.config, "oidc", base_url=url))
    assert check.verdict == "FAIL" and REFUSED not in check.detail, check
    assert "got 502 server_error" in check.detail


async def test_the_real_gateway_sends_the_header(make_gateway: Callable[..., object]) -> None:
    """End to end, the gateway itself: wrong upstream credentials are named by the header."""
    gateway = await make_gateway(upstream_secret="not-what-the-upstream-knows")  # type: ignore[misc]
    assert isinstance(gateway, Gateway)
    form = {"grant_type": "refresh_token", "refresh_token": "made-up"}
    platform = gateway.config.providers["oidc"].platform
    headers = {"Authorization": basic_auth_header(platform.client_id, platform.client_secret)}
    async with aiohttp.ClientSession() as client, client.post(gateway.endpoint("token"), data=form, headers=headers) as response:
        assert response.status == 502
        assert response.headers[FAILURE_HEADER] == "refused"
        body = await response.json()
    assert SECTION_5_2.fullmatch(body["error_description"])
