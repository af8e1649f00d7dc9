"""The request guard (gateway/web/runner.py): draining, the body deadline and never a traceback, in
one middleware, on a real aiohttp server on 127.0.0.1 (the e2e tests run the same paths through
``gateway serve`` subprocesses, which coverage does not see)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.config.settings import ConnectionSettings
from gateway.observe.logs import request_middleware
from gateway.observe.record import RECORD
from gateway.web.runner import DRAIN, Drain, request_guard

SETTINGS = ConnectionSettings(body_timeout=0.3)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
outcomes: list[str] = []


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret-looking detail")


async def reset(request: web.Request) -> web.Response:
    raise ConnectionResetError


async def echo(request: web.Request) -> web.Response:
    return web.Response(text=(await request.read()).decode())


async def wait(request: web.Request) -> web.Response:
    await asyncio.sleep(10)
    return web.Response(text="late")


@web.middleware
async def note_outcome(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    finally:
        outcomes.append(request[RECORD].outcome)


def make_app(*, drain: Drain | None, within: bool = False) -> web.Application:
    """The guard as a middleware of its own, or (``within``) called by the request line's, as the gateway's app has it."""
    guard = request_guard(lambda request: SETTINGS)
    middlewares = (
        [note_outcome, request_middleware("X-Request-Id", within=guard)] if within
        else [request_middleware("X-Request-Id"), note_outcome, guard]
    )
    app = web.Application(middlewares=middlewares)
    if drain is not None:
        app[DRAIN] = drain
    app.router.add_get("/boom", boom)
    app.router.add_get("/reset", reset)
    app.router.add_post("/echo", echo)
    app.router.add_get("/wait", wait)
    return app


@pytest.fixture(params=[False, True], ids=["chained", "within"])
async def guarded(request: pytest.FixtureRequest) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Drain]]:
    drain = Drain()
    client = TestClient(TestServer(make_app(drain=drain, within=request.param), host="127.0.0.1"))
    await client.start_server()
    outcomes.clear()
    yield client, drain
    await client.close()


async def waiting_request(client: TestClient[web.Request, web.Application], drain: Drain) -> asyncio.Task[ClientResponse]:
    """A GET /wait, once its handler is running under the drain."""
    request = asyncio.create_task(client.get("/wait"))
    async with asyncio.timeout(5):
        while not drain.running:
            await asyncio.sleep(0.01)
    return request


async def test_an_unexpected_failure_is_a_short_json_500_and_one_log_line(
    guarded: tuple[TestClient[web.Request, web.Application], Drain], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = guarded
    with caplog.at_level(logging.ERROR, logger="gateway.web.app"):
        response = await client.get("/boom")
        body = await response.text()
    assert response.status == 500 and json.loads(body) == {"error": "server_error", "error_description": "internal error"}
    assert response.headers["Cache-Control"] == "no-store" and "secret-looking" not in body
    assert [record.getMessage() for record in caplog.records] == ["unhandled error on GET /boom"]


async def test_a_client_that_left_is_noted_not_answered_as_an_error(guarded: tuple[TestClient[web.Request, web.Application], Drain]) -> None:
    client, _ = guarded
    response = await client.get("/reset")
    assert response.status == 499 and outcomes == ["client_disconnect"]


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_connection_close(
    guarded: tuple[TestClient[web.Request, web.Application], Drain],
) -> None:
    client, _ = guarded
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        await writer.drain()
        answer = b""
        async with asyncio.timeout(5):
            while b"too slow" not in answer:
                chunk = await reader.read(1024)
                assert chunk, f"closed without an answer: {answer!r}"
                answer += chunk
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in answer
    assert outcomes == ["body_timeout"]


async def test_a_whole_body_is_read_by_the_handler(guarded: tuple[TestClient[web.Request, web.Application], Drain]) -> None:
    client, _ = guarded
    response = await client.post("/echo", data=b"grant_type=refresh_token")
    assert response.status == 200 and await response.text() == "grant_type=refresh_token"


async def test_past_the_shutdown_grace_a_running_request_gets_503_and_new_ones_too(
    guarded: tuple[TestClient[web.Request, web.Application], Drain],
) -> None:
    client, drain = guarded
    running = await waiting_request(client, drain)
    drain.closing = True
    drain.expired.set()
    response = await running
    assert response.status == 503 and (await response.json())["error"] == "temporarily_unavailable"
    assert response.headers["Connection"] == "close" and response.headers["Retry-After"] == "1"
    again = await client.get("/boom")
    assert again.status == 503, "no new work once the grace is over"
    assert not drain.running


async def test_a_client_that_hangs_up_cancels_only_its_own_request_while_draining(
    guarded: tuple[TestClient[web.Request, web.Application], Drain],
) -> None:
    client, drain = guarded
    waiting = await waiting_request(client, drain)
    task = next(iter(drain.running))
    task.cancel()  # as aiohttp does when the server stops: not the grace's doing
    async with asyncio.timeout(5):
        while not task.done():
            await asyncio.sleep(0.01)
    assert task.cancelled() and not drain.running
    waiting.cancel()


@pytest.mark.parametrize("within", [False, True])
async def test_without_a_drain_the_guard_still_answers(within: bool) -> None:
    client = TestClient(TestServer(make_app(drain=None, within=within), host="127.0.0.1"))
    await client.start_server()
    try:
        assert (await client.get("/boom")).status == 500
        assert (await (await client.post("/echo", data=b"x")).text()) == "x"
    finally:
        await client.close()
