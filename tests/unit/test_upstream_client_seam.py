"""``send`` classifies what the upstream did, in-process: an :class:`UpstreamClient` double answers
(in the spirit of httpx's ``MockTransport``), so no socket, port or server is needed.

The e2e fault matrix (tests/e2e/test_fault_matrix.py) checks the same classes over real TCP; these
cases pin the classification itself and what ``send`` hands the client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest

from gateway.oauth.responses import ServerError, TemporarilyUnavailable
from gateway.upstream.answer import MAX_ANSWER_BYTES, UpstreamAnswer
from gateway.upstream.client import PreparedRequest, UpstreamResponse, send
from gateway.web.appkeys import RequestRecord


@dataclass
class Sent:
    """One request as the client double received it."""

    method: str
    url: str
    params: Mapping[str, str] | None
    data: bytes | None
    headers: Mapping[str, str]
    allow_redirects: bool
    timeout: aiohttp.ClientTimeout


@dataclass
class Answer:
    status: int = 200
    content_type: str = "application/json"
    chunks: list[bytes] = field(default_factory=lambda: [b'{"access_token": "at", "token_type": "bearer"}'])


class _Body:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _Response:
    def __init__(self, answer: Answer) -> None:
        self.status = answer.status
        self.headers = {"Content-Type": answer.content_type}
        self.content = _Body(answer.chunks)


Handler = Callable[[Sent], Awaitable[Answer]]


class MockClient:
    """An :class:`UpstreamClient` whose answers come from ``handler``; keeps what it was sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sent: list[Sent] = []

    @asynccontextmanager
    async def _respond(self, sent: Sent) -> AsyncIterator[UpstreamResponse]:
        self.sent.append(sent)
        yield _Response(await self.handler(sent))

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: Mapping[str, str],
        skip_auto_headers: Iterable[str] = (),
        allow_redirects: bool,
        timeout: aiohttp.ClientTimeout,
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self._respond(Sent(method, url, params, data, dict(headers), allow_redirects, timeout))


def answering(answer: Answer) -> MockClient:
    async def handler(_sent: Sent) -> Answer:
        return answer

    return MockClient(handler)


def failing(exc: BaseException) -> MockClient:
    async def handler(_sent: Sent) -> Answer:
        raise exc

    return MockClient(handler)


FORM = PreparedRequest("POST", "http://upstream.test/token", {}, {"Authorization": "Basic eA=="},
                       {"grant_type": "authorization_code", "code": "c 1"}, None, None)


async def test_a_good_answer_is_read_whole_and_the_request_is_sent_once_without_redirects() -> None:
    client = answering(Answer(chunks=[b'{"access_token": ', b'"at"}']))
    record = RequestRecord("r1")
    answer = await send(client, FORM, default_timeout=4.0, record=record)
    assert answer == UpstreamAnswer(200, "application/json", b'{"access_token": "at"}')
    [sent] = client.sent
    assert (sent.method, sent.url, sent.params, sent.allow_redirects) == ("POST", "http://upstream.test/token", None, False)
    assert sent.data == b"grant_type=authorization_code&code=c+1"
    assert sent.headers == {"Authorization": "Basic eA==", "Content-Type": "application/x-www-form-urlencoded"}
    assert sent.timeout.total == 4.0
    assert (record.upstream_status, record.upstream_failure) == (200, "")
    assert record.upstream_seconds is not None and record.upstream_seconds >= 0


async def test_a_json_body_and_the_mappings_own_timeout() -> None:
    client = answering(Answer())
    request = PreparedRequest("POST", "http://upstream.test/token", {"a": "b"}, {}, None, {"code": "c"}, 9.5)
    await send(client, request, default_timeout=4.0)
    [sent] = client.sent
    assert json.loads(sent.data or b"") == {"code": "c"} and sent.headers["Content-Type"] == "application/json"
    assert sent.params == {"a": "b"} and sent.timeout.total == 9.5


@pytest.mark.parametrize("exc", [aiohttp.ClientConnectionError("refused"), aiohttp.ServerDisconnectedError(),
                                 aiohttp.ClientPayloadError("cut")], ids=type)
async def test_connection_failures_are_temporarily_unavailable(exc: BaseException) -> None:
    record = RequestRecord("r2")
    with pytest.raises(TemporarilyUnavailable, match="could not be reached"):
        await send(failing(exc), FORM, default_timeout=4.0, record=record)
    assert (record.upstream_status, record.upstream_failure) == (None, "connection")


async def test_an_upstream_that_never_answers_times_out_at_the_deadline() -> None:
    never = asyncio.Event()

    async def handler(_sent: Sent) -> Answer:
        await never.wait()  # nobody sets it: the upstream hangs
        raise AssertionError("unreachable")

    record = RequestRecord("r3")
    with pytest.raises(TemporarilyUnavailable, match="within 0.05s"):
        await send(MockClient(handler), FORM, default_timeout=0.05, record=record)
    assert record.upstream_failure == "timeout"


async def test_a_non_transient_answer_over_64_kib_is_refused() -> None:
    record = RequestRecord("r4")
    big = Answer(chunks=[b"x" * MAX_ANSWER_BYTES, b"x"])
    with pytest.raises(ServerError, match="64 KiB"):
        await send(answering(big), FORM, default_timeout=4.0, record=record)
    assert record.upstream_failure == "too_large"


async def test_exactly_64_kib_is_read() -> None:
    answer = await send(answering(Answer(chunks=[b"x" * MAX_ANSWER_BYTES])), FORM, default_timeout=4.0)
    assert len(answer.body) == MAX_ANSWER_BYTES


@pytest.mark.parametrize("status", [429, 503])
async def test_a_large_outage_page_keeps_only_its_status(status: int) -> None:
    record = RequestRecord("r5")
    page = Answer(status=status, content_type="text/html", chunks=[b"<html>" + b"x" * MAX_ANSWER_BYTES])
    answer = await send(answering(page), FORM, default_timeout=4.0, record=record)
    assert (answer.status, answer.body) == (status, b"")
    assert (record.upstream_status, record.upstream_failure) == (status, "")

