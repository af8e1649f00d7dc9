"""The flow cookie (gateway/web/session.py): its Set-Cookie line is what aiohttp would write, its
size arithmetic is JSON's, it opens what it sealed and what the earlier version sealed; plus the
start-up pieces of gateway/web/server.py (gc.freeze, the loop choice)."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.fernet import MultiFernet
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.settings import CookieSettings
from gateway.oauth.cookieseal import CookieSeal
from gateway.oauth.seal import build_fernet, generate_key
from gateway.oauth.state import FlowEntry
from gateway.web import server
from gateway.web.session import MAX_FLOWS_JSON, FlowCookie, FlowStore, FlowTooLarge

SETTINGS = CookieSettings()


def _cookie(settings: CookieSettings = SETTINGS, key: str = "") -> tuple[FlowCookie, CookieSeal, MultiFernet]:
    key = key or generate_key()
    seal = CookieSeal([key])
    return FlowCookie(seal, settings), seal, build_fernet([key])


def _request(cookie: str) -> web.Request:
    return make_mocked_request("GET", "/", headers={"Cookie": cookie})


def _save(cookie: FlowCookie, response: web.Response, data: dict[str, Any]) -> None:
    cookie.write_session(response, FlowStore.holding(data, SETTINGS).session)


def _load(cookie: FlowCookie, request: web.Request) -> dict[str, Any] | None:
    """What the request's cookie held, or None for a fresh session."""
    session = cookie.open_session(request)
    return None if session.new else dict(session)


@pytest.mark.parametrize("secure", [True, False])
def test_the_set_cookie_line_is_aiohttps_without_the_quotes(secure: bool) -> None:
    settings = CookieSettings(secure=secure)
    cookie, seal, _ = _cookie(settings)
    response = web.Response()
    _save(cookie, response, {"flows": {"n1": {"p": "p", "r": "https://r.example/cb", "x": 1}}})
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
    assert line == expected.replace(f'"{morsel.value}"', morsel.value)  # a sealed value needs no quotes
    opened = json.loads(seal.open(morsel.value, max_age=settings.max_age))
    assert opened["session"] == {"flows": {"n1": {"p": "p", "r": "https://r.example/cb", "x": 1}}}
    assert set(opened) == {"created", "session"}, "aiohttp-session's envelope, as every version wrote it"


def test_empty_flows_delete_the_cookie() -> None:
    cookie, _, _ = _cookie()
    response = web.Response()
    _save(cookie, response, {})
    morsel = response.cookies[SETTINGS.name]
    assert morsel.value == "" and morsel["max-age"] == "0"


def test_it_opens_what_it_sealed_and_starts_afresh_on_anything_else() -> None:
    cookie, _, _ = _cookie()
    response = web.Response()
    _save(cookie, response, {"flows": {"n": {"p": "p", "x": 2}}})
    value = response.headers["Set-Cookie"].split(";", 1)[0]
    assert _load(cookie, _request(value)) == {"flows": {"n": {"p": "p", "x": 2}}}
    other, _, _ = _cookie()  # another key
    assert _load(other, _request(value)) is None
    assert _load(cookie, make_mocked_request("GET", "/")) is None
    for garbage in ("not-a-token", "gAAAAAnot-fernet", "AQ==", "é"):
        assert _load(cookie, _request(f"{SETTINGS.name}={garbage}")) is None, garbage


def test_a_cookie_the_earlier_version_sealed_opens() -> None:
    """Flows in flight during an upgrade: the earlier version wrote aiohttp-session's envelope
    (``created`` and ``session``) as compact JSON, sealed with Fernet under the same keys."""
    key = generate_key()
    cookie, _, fernet = _cookie(key=key)
    data = {"flows": {"n": {"p": "p", "r": "https://r.example/cb", "t": "code", "x": 2}}, "done": ["abc"]}
    envelope = json.dumps({"created": int(time.time()) - 5, "session": data}, separators=(",", ":")).encode()
    assert _load(cookie, _request(f"{SETTINGS.name}={fernet.encrypt(envelope).decode()}")) == data
    other, _, _ = _cookie()
    assert _load(other, _request(f"{SETTINGS.name}={fernet.encrypt(envelope).decode()}")) is None


_TEXT = st.text(st.characters(codec="utf-8"), max_size=600)


@given(st.lists(st.tuples(_TEXT, _TEXT, st.none() | _TEXT), min_size=1, max_size=8))
def test_the_flows_kept_are_what_whole_json_encoding_would_keep(flows: list[tuple[str, str, str | None]]) -> None:
    """The trimming adds up entry sizes instead of encoding the whole dict after each removal:
    it must keep exactly the flows the old re-encoding loop kept."""
    store = FlowStore.holding(None, SETTINGS)
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
        assert store.data["flows"] == expected


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
    astral = {"s": "\U0001f600" * 200}  # twelve characters of JSON each
    assert _surely_fits(astral) and len(json.dumps(astral, separators=(",", ":"))) <= MAX_FLOWS_JSON - 100


_COOKIE_TEXT = st.lists(st.sampled_from(list("ab=; \t\"\\,_-é+/") + ["gateway_flow"]), max_size=20).map("".join)


@settings(max_examples=400)
@given(st.lists(st.tuples(st.sampled_from(["gateway_flow", "other", "gateway_flow2", " gateway_flow"]), _COOKIE_TEXT), max_size=4) | _COOKIE_TEXT.map(lambda text: [("", text)]))
def test_the_cookie_is_read_as_aiohttp_reads_it(pairs: list[tuple[str, str]]) -> None:
    """The flow cookie's value is what ``request.cookies`` gives for any ``Cookie`` header (the
    direct split without quotes, aiohttp's parser with them)."""
    from gateway.web.session import _cookie

    header = "; ".join(f"{name}={value}" if name else value for name, value in pairs)
    request = make_mocked_request("GET", "/", headers={"Cookie": header} if header else {})
    assert _cookie(request, SETTINGS.name) == request.cookies.get(SETTINGS.name), header


@pytest.mark.parametrize(
    "header",
    ["gateway_flow=AQAAAA-_==", "a=1; gateway_flow=AQAAAA-_==; b=2", "gateway_flow=old; gateway_flow=AQAAAA-_==",  # plain: split here
     'a="x;y"; gateway_flow=AQAAAA-_==', "a=1;  gateway_flow=AQAAAA-_=="],  # quotes, two spaces: aiohttp's parser
)
def test_the_flow_cookie_is_found_beside_others(header: str) -> None:
    from gateway.web.session import _cookie

    request = make_mocked_request("GET", "/", headers={"Cookie": header})
    assert _cookie(request, SETTINGS.name) == request.cookies[SETTINGS.name] == "AQAAAA-_=="
