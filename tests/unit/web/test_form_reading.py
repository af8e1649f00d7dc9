"""Reading a platform's form (gateway/web/handlers): a body that is all in is taken as it is, one
still arriving is read; both give ``parse_qsl``'s pairs, on a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from gateway.oauth.responses import OAuthError
from gateway.web.handlers import form_pairs, read_form

BODY = "grant_type=refresh_token&refresh_token=rt%2B1+x&client_id=alexa&empty=&bare&%C3%A9=%E2%82%AC"


@given(st.text(alphabet="ab=&+%2CF3é\x00 ", max_size=40))
def test_form_pairs_are_parse_qsl_s(text: str) -> None:
    assert form_pairs(text) == parse_qsl(text, keep_blank_values=True)


async def form(request: web.Request) -> web.Response:
    try:
        return web.json_response(await read_form(request))
    except OAuthError as err:
        return web.json_response({"error": err.error}, status=err.status)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(client_max_size=200)
    app.router.add_post("/form", form)
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def _slowly(body: bytes) -> AsyncIterator[bytes]:
    """The body in two pieces, the second after the handler has started (a chunked upload)."""
    yield body[:10]
    await asyncio.sleep(0.2)
    yield body[10:]


async def test_a_body_that_is_all_in_and_one_still_arriving_read_alike(client: TestClient[web.Request, web.Application]) -> None:
    expected = dict(parse_qsl(BODY, keep_blank_values=True))
    whole = await client.post("/form", data=BODY.encode())
    assert (whole.status, await whole.json()) == (200, expected)
    streamed = await client.post("/form", data=_slowly(BODY.encode()))
    assert (streamed.status, await streamed.json()) == (200, expected)


async def test_a_body_over_the_limit_is_413_either_way(client: TestClient[web.Request, web.Application]) -> None:
    large = ("a=" + "x" * 300).encode()
    whole = await client.post("/form", data=large)
    assert (whole.status, await whole.json()) == (413, {"error": "invalid_request"})
    streamed = await client.post("/form", data=_slowly(large))
    assert (streamed.status, await streamed.json()) == (413, {"error": "invalid_request"})
