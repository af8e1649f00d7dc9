"""The flow-cookie storage (gateway/web/session.py): an aiohttp-session AbstractStorage whose
Set-Cookie line is what aiohttp would write, whose size arithmetic is JSON's, and which opens
what it sealed; plus the start-up pieces of gateway/web/server.py (gc.freeze, the loop choice)."""

from __future__ import annotations

import asyncio
import gc
import json
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp_session import AbstractStorage, Session
from cryptography.fernet import Fernet, MultiFernet
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.settings import CookieSettings
from gateway.oauth.state import FlowEntry
from gateway.web import server
from gateway.web.session import MAX_FLOWS_JSON, FlowStore, FlowTooLarge, RotatingCookieStorage

SETTINGS = CookieSettings()


def _storage(settings: CookieSettings = SETTINGS) -> tuple[RotatingCookieStorage, MultiFernet]:
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    return RotatingCookieStorage(fernet, settings), fernet


@pytest.mark.parametrize("secure", [True, False])
async def test_the_set_cookie_line_is_aiohttps_without_the_quotes(secure: bool) -> None:
    settings = CookieSettings(secure=secure)
    storage, fernet = _storage(settings)
    assert isinstance(storage, AbstractStorage)
    session = Session(None, data=None, new=True, max_age=settings.max_age)
    session["flows"] = {"n1": {"p": "p", "r": "https://r.example/cb", "x": 1}}
    response = web.Response()
    await storage.save_session(make_mocked_request("GET", "/"), response, session)
    [line] = response.headers.getall("Set-Cookie")

    written = SimpleCookie()
    written.load(line)
    morsel = written[settings.name]
    reference = web.Response()  # what aiohttp's own set_cookie writes for the same value
    reference.set_cookie(
        settings.name, morsel.value, expires=morsel["expires"], max_age=settings.max_age, path="/",
        secure=secure or None, httponly=True, samesite="Lax",
    )
    expected = reference.cookies[settings.name].OutputString()
    assert line == expected.replace(f'"{morsel.value}"', morsel.value)  # a Fernet token needs no quotes
    opened = json.loads(fernet.decrypt(morsel.value.encode()))
    assert opened["session"] == {"flows": {"n1": {"p": "p", "r": "https://r.example/cb", "x": 1}}}


async def test_it_opens_what_it_sealed_and_starts_afresh_on_anything_else() -> None:
    storage, _ = _storage()
    session = Session(None, data=None, new=True, max_age=SETTINGS.max_age)
    session["flows"] = {"n": {"p": "p", "x": 2}}
    response = web.Response()
    await storage.save_session(make_mocked_request("GET", "/"), response, session)
    cookie = response.headers["Set-Cookie"].split(";", 1)[0]
    loaded = await storage.load_session(make_mocked_request("GET", "/", headers={"Cookie": cookie}))
    assert not loaded.new and loaded["flows"] == {"n": {"p": "p", "x": 2}}
    other, _ = _storage()  # another key
    assert (await other.load_session(make_mocked_request("GET", "/", headers={"Cookie": cookie}))).new
    garbage = f"{SETTINGS.name}=not-a-token"
    assert (await storage.load_session(make_mocked_request("GET", "/", headers={"Cookie": garbage}))).new


_TEXT = st.text(st.characters(codec="utf-8"), max_size=600)


@given(st.lists(st.tuples(_TEXT, _TEXT, st.none() | _TEXT), min_size=1, max_size=8))
def test_the_flows_kept_are_what_whole_json_encoding_would_keep(flows: list[tuple[str, str, str | None]]) -> None:
    """The trimming adds up entry sizes instead of encoding the whole dict after each removal:
    it must keep exactly the flows the old re-encoding loop kept."""
    session = Session(None, data=None, new=True, max_age=600)
    store = FlowStore(session, SETTINGS)
    expected: dict[str, Any] = {}
    for n, (redirect_uri, state, verifier) in enumerate(flows):
        now = 1_000.0 + n
        wire: dict[str, Any] = {"p": "p", "r": redirect_uri, "t": "code", "s": state}
        if verifier is not None:
            wire["v"] = verifier
        if len(json.dumps(wire, separators=(",", ":"))) > MAX_FLOWS_JSON - 100:
            with pytest.raises(FlowTooLarge):
                store.add(f"nonce{n}", FlowEntry.from_wire(wire), now=now)
            continue
        store.add(f"nonce{n}", FlowEntry.from_wire(wire), now=now)
        expected[f"nonce{n}"] = {**wire, "x": int(now) + SETTINGS.max_age}
        while len(expected) > 1 and (
            len(expected) > SETTINGS.max_flows or len(json.dumps(expected, separators=(",", ":"))) > MAX_FLOWS_JSON
        ):
            del expected[min(expected, key=lambda key: expected[key]["x"])]
        assert session["flows"] == expected


def test_freeze_heap_freezes_and_a_reload_unfreezes_first() -> None:
    try:
        server.freeze_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        server.freeze_heap(again=True)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_event_loop_is_uvloop_when_installed_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_LOOP", "asyncio")
    assert server.loop_factory() is None
    monkeypatch.delenv("GATEWAY_LOOP")
    try:
        import uvloop
    except ImportError:
        assert server.loop_factory() is None
        return
    factory = server.loop_factory()
    assert factory is uvloop.new_event_loop
    loop = factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


@given(st.dictionaries(st.sampled_from(["p", "r", "s", "v", "cc", "ccm", "t"]), st.text(max_size=1400), max_size=7))
def test_a_flow_said_to_fit_without_encoding_does_fit(flow: dict[str, str]) -> None:
    from gateway.web.session import _surely_fits

    if _surely_fits(flow):
        assert len(json.dumps(flow, separators=(",", ":"))) <= MAX_FLOWS_JSON - 100
    assert _surely_fits({"p": "p", "r": "https://pitangui.amazon.com/api/skill/link/M2", "s": "x" * 40})
