"""The recording upstream itself (tests/support/upstream.py): a double the other tests trust must
misbehave exactly as asked, over a socket and in-process alike, and record what it received."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from support.oauth import basic
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RecordingUpstream, Reply, code_of

from gateway.upstream.client import PreparedRequest, send

CREDENTIALS = {"Authorization": basic(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)}


async def post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session, session.post(url, data=form, headers=headers or CREDENTIALS) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


async def test_the_builtin_server_spends_a_code_once_and_rotates_refresh_tokens(fake: RecordingUpstream) -> None:
    code = fake.issue_code("https://back.example/cb")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://back.example/cb"}
    status, body, content_type = await post(fake.token_endpoint, form)
    assert (status, content_type) == (200, "application/json")
    token = json.loads(body)
    assert code_of(token["access_token"]) == code and code_of(token["refresh_token"]) == code
    assert (await post(fake.token_endpoint, form))[0] == 400  # single use (RFC 6749 §4.1.2)
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    assert (await post(fake.token_endpoint, refresh))[0] == 200
    assert (await post(fake.token_endpoint, refresh))[0] == 400  # rotated: the old one is spent
    assert (await post(fake.token_endpoint, refresh, headers=CREDENTIALS | {"Authorization": basic("x", "y")}))[0] == 401
    assert [request.grant_type for request in fake.token_requests] == ["authorization_code"] * 2 + ["refresh_token"] * 3


async def test_queued_replies_come_first_then_the_chooser_then_the_standing_reply(fake: RecordingUpstream) -> None:
    fake.answer("/x", Reply(status=201, body="standing"))
    fake.answer("/x", lambda request: Reply(status=202, body="chosen") if request.form.get("pick") else None)
    fake.queue("/x", Reply(status=203, body="queued"))
    url = fake.url_of("/x")
    assert (await post(url, {"pick": "1"}))[:2] == (203, b"queued")
    assert (await post(url, {"pick": "1"}))[:2] == (202, b"chosen")
    assert (await post(url, {}))[:2] == (201, b"standing")
    assert (await post(fake.url_of("/nothing"), {}))[0] == 500  # no answer configured there


async def test_faults_over_a_socket(fake: RecordingUpstream) -> None:
    fake.queue("/t", Reply(disconnect="before_headers"), Reply(body=b"0123456789", disconnect="mid_body"))
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(fake.url_of("/t"), {})
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(fake.url_of("/t"), {})
    fake.queue("/t", Reply(body=b"a" * 100, chunks=4, chunk_delay=0.01))
    assert (await post(fake.url_of("/t"), {}))[:2] == (200, b"a" * 100)  # chunked, whole
    fake.queue("/t", Reply(body=b"late", delay=0.2))
    started = asyncio.get_running_loop().time()
    assert (await post(fake.url_of("/t"), {}))[:2] == (200, b"late")
    assert asyncio.get_running_loop().time() - started >= 0.2


async def test_a_hang_is_released_when_the_upstream_stops() -> None:
    upstream = await RecordingUpstream().start()
    upstream.fault = Reply(hang=True)
    request = asyncio.create_task(post(upstream.token_endpoint, {"grant_type": "refresh_token"}))
    await upstream.wait_for(timeout=5)
    assert not request.done()
    await upstream.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await asyncio.wait_for(request, 5)


async def test_the_record_and_its_assertions(fake: RecordingUpstream) -> None:
    await post(fake.url_of("/r") + "?q=1", {"a": "b"}, headers={"Authorization": basic("id:x", "s"), "X-Extra": "yes"})
    recorded = fake.only("/r")
    assert (recorded.method, recorded.path, recorded.query, recorded.form) == ("POST", "/r", {"q": "1"}, {"a": "b"})
    assert recorded.content_type == "application/x-www-form-urlencoded" and recorded.params == {"q": "1", "a": "b"}
    assert recorded.basic_credentials() == ("id", "x:s")  # split at the first colon (RFC 7617 §2)
    recorded.assert_matches(method="POST", form={"a": "b"}, headers={"x-extra": "yes", "Authorization": None}, absent=["c"])
    problems = recorded.mismatches(method="GET", form={"a": "c"}, headers={"X-Missing": None}, absent=["a"])
    assert len(problems) == 4, problems
    with pytest.raises(AssertionError):
        fake.only("/nothing")


async def test_in_process_the_same_configuration_answers_without_a_socket() -> None:
    upstream = RecordingUpstream()  # never started
    code = upstream.issue_code("https://back.example/cb")
    request = PreparedRequest(
        "POST", "https://anywhere.test/token", {}, CREDENTIALS,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://back.example/cb"}, None, None,
    )
    answer = await send(upstream.client(), request, default_timeout=2.0)
    assert answer.status == 200 and code.encode() in answer.body
    answer = await send(upstream.client(), request, default_timeout=2.0)
    assert answer.status == 400  # the built-in server's single use, in-process too
    assert upstream.code_exchanges(code)[0].host == "anywhere.test"


async def test_further_hosts_share_the_port_and_are_recorded_by_name() -> None:
    async with RecordingUpstream(host="127.0.0.2", hosts=["127.0.0.3"]) as regional:
        regional.fault = Reply(body={"access_token": "at"})
        for host in ("127.0.0.2", "127.0.0.3"):
            assert (await post(regional.url_of("/token", host), {}))[0] == 200
        assert [request.host for request in regional.token_requests] == ["127.0.0.2", "127.0.0.3"]
