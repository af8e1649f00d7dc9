"""The flow cookie: what the browser leg must remember between ``/authorize`` and ``/callback``.

:class:`FlowCookie` reads and writes it: an aiohttp-session storage whose session holds the flows,
as aiohttp-session's compact JSON envelope sealed with the gateway's keys
(:class:`~gateway.oauth.cookieseal.CookieSeal`: AES-GCM, the first key seals, every key opens, so
keys rotate without breaking flows in flight; a cookie an earlier version sealed with Fernet
still opens). The ``Set-Cookie`` line is written directly, as ``http.cookies`` would write it
less the quotes: a sealed value (URL-safe base64) needs none (RFC 6265 §4.1.1 allows ``=`` in a
cookie value).

The cookie holds a small dict of *flows*, keyed by the random nonce that goes upstream as
``state`` (the CSRF check of RFC 6749 §10.12). Several link attempts in one browser (two tabs,
a retry after "back") each keep their own entry instead of clobbering one another; the oldest
is dropped past ``max_flows`` so the cookie stays well under the 4 KB browsers keep.

Only the browser endpoints carry the cookie, so no middleware reads or writes it for every
request: a handler asks for the flows (:meth:`FlowStore.of`, which opens the cookie once per
request), and the browser frame writes them back (:func:`save_flows`) when they changed (a
cookie that was written to is saved, one only read is not). ``/token``, ``/revoke`` and the
operational endpoints pay nothing for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from collections.abc import MutableMapping
from typing import Any, cast

from aiohttp import hdrs, web
from aiohttp_session import AbstractStorage, Session, SessionData

from gateway.config.settings import CookieSettings
from gateway.oauth.cookieseal import CookieSeal
from gateway.oauth.seal import SealError
from gateway.oauth.state import FlowEntry, StateError
from gateway.web.appkeys import Runtime, RuntimeHolder

__all__ = ["CurrentSeal", "FlowCookie", "FLOW_COOKIE", "FlowStore", "FlowTooLarge", "MAX_FLOWS_JSON", "save_flows"]

#: The flows' JSON that still makes a cookie under 4096 bytes once sealed and encoded.
MAX_FLOWS_JSON = 2600

log = logging.getLogger(__name__)
#: Compact JSON, one encoder for every cookie (``json.dumps(…, separators=…)`` builds one per call).
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.JSONDecoder().decode


class FlowTooLarge(ValueError):
    """One flow alone is larger than a browser keeps in a cookie."""


class CurrentSeal:
    """The seal of the current runtime's keys, made once per runtime, so a reload can rotate keys."""

    def __init__(self, holder: RuntimeHolder) -> None:
        self._holder = holder
        self._runtime: Runtime | None = None
        self._seal: CookieSeal | None = None

    def __call__(self) -> CookieSeal:
        runtime = self._holder.current
        if runtime is not self._runtime or self._seal is None:
            self._seal, self._runtime = CookieSeal(runtime.config.keys, aead=runtime.config.seal_aead), runtime
        return self._seal


class FlowCookie(AbstractStorage):
    """aiohttp-session's storage for the flow cookie: the session's JSON sealed with a
    :class:`~gateway.oauth.cookieseal.CookieSeal` (aiohttp-session's own envelope,
    ``{"created": …, "session": {…}}``, so a cookie an earlier version wrote opens as it is).

    No middleware: the browser endpoints open the session when they need it
    (:meth:`open_session`, the synchronous body of :meth:`load_session`) and the browser frame
    saves it (:meth:`write_session`)."""

    def __init__(self, seal: CookieSeal | CurrentSeal, settings: CookieSettings) -> None:
        super().__init__(
            cookie_name=settings.name,
            max_age=settings.max_age,
            path="/",
            secure=settings.secure,
            httponly=True,
            samesite="Lax",
            encoder=_dumps,
            decoder=_loads,
        )
        self._source = seal
        self._lifetime = settings.max_age
        self._secure = settings.secure
        # What http.cookies.Morsel writes after the value for these parameters, in its order.
        self._attributes = f"; HttpOnly; Max-Age={settings.max_age}; Path=/; SameSite=Lax" + ("; Secure" if settings.secure else "")
        self._expires_at = -1
        self._expires = ""

    def open_session(self, request: web.Request) -> Session:
        """The request's session, or a new one for no cookie this gateway can open (none,
        expired, another key's, not a sealed value, not ASCII): a fresh start."""
        value = _cookie(request, self.cookie_name)
        if value is None or not value.isascii():
            return Session(None, data=None, new=True, max_age=self.max_age)
        try:
            data = self._decoder(self._seal().open(value, max_age=self._lifetime).decode("utf-8"))
        except (SealError, UnicodeDecodeError, ValueError):  # another key, expired, or not ours at all
            log.debug("flow cookie could not be opened; starting a fresh one")
            return Session(None, data=None, new=True, max_age=self.max_age)
        if not isinstance(data, dict) or not isinstance(data.get("session", {}), dict):
            return Session(None, data=None, new=True, max_age=self.max_age)
        return Session(None, data=cast(SessionData, data), new=False, max_age=self.max_age)

    async def load_session(self, request: web.Request) -> Session:
        return self.open_session(request)

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        self.write_session(response, session)

    def write_session(self, response: web.StreamResponse, session: Session) -> None:
        """Set the cookie to ``session`` (an empty one: delete it)."""
        if session.empty:
            response.del_cookie(self.cookie_name, path="/", secure=self._secure or None, httponly=True, samesite="Lax")
            return
        value = self._seal().seal(self._encoder(self._get_session_data(session)).encode("utf-8"))
        response.headers.add(hdrs.SET_COOKIE, f"{self.cookie_name}={value}; expires={self._expiry()}{self._attributes}")

    def _seal(self) -> CookieSeal:
        return self._source() if isinstance(self._source, CurrentSeal) else self._source

    def _expiry(self) -> str:
        """``Expires`` for a cookie set now (the same second gives the same text: made once)."""
        now = int(time.time())
        if now != self._expires_at:
            self._expires_at = now
            self._expires = time.strftime("%a, %d-%b-%Y %H:%M:%S GMT", time.gmtime(now + self._lifetime))
        return self._expires


#: A ``Cookie`` header of plain ``name=value`` pairs (what browsers send; every sealed value is one):
#: characters aiohttp's cookie parser reads as themselves, in names and values alike.
_PLAIN_PAIR = r"[A-Za-z0-9_.~+/!#$%&'*^`|-]+=[A-Za-z0-9_.~+/!#$%&'*^`|=-]*"
_PLAIN_COOKIES = re.compile(rf"{_PLAIN_PAIR}(?:; ?{_PLAIN_PAIR})*")


def _cookie(request: web.Request, name: str) -> str | None:
    """The value of cookie ``name`` in ``request``'s ``Cookie`` header, as ``request.cookies``
    gives it (the last, if there are several). That parser builds an ``http.cookies.Morsel`` for
    every cookie; a header of plain pairs (RFC 6265 §4.2.1) is split here directly instead.
    Anything else (quotes, spaces, a pair without ``=``) goes to aiohttp's parser."""
    header = request.headers.get(hdrs.COOKIE)
    if not header:
        return None
    if _PLAIN_COOKIES.fullmatch(header) is None:
        return request.cookies.get(name)
    found = None
    for pair in header.split(";"):
        key, _, value = pair.partition("=")
        if key.lstrip() == name:
            found = value
    return found


#: The application's flow cookie (made once by the app factory).
FLOW_COOKIE = web.AppKey("flow_cookie", FlowCookie)


class FlowStore:
    """The flows of one browser, in its flow cookie's session."""

    def __init__(self, session: Session, settings: CookieSettings) -> None:
        self._session = session
        self._data: MutableMapping[str, Any] = session
        self._settings = settings
        #: False when the browser sent no (readable) flow cookie at all.
        self.had_cookie = not session.new
        #: True once the flows were written to (even unchanged), so the cookie is sent back.
        self.changed = False

    @classmethod
    def holding(cls, data: dict[str, Any] | None, settings: CookieSettings) -> FlowStore:
        """The flows of a cookie that held ``data`` (``None``: no cookie)."""
        envelope: SessionData | None = None if data is None else {"created": int(time.time()), "session": data}
        return cls(Session(None, data=envelope, new=data is None, max_age=settings.max_age), settings)

    @classmethod
    def of(cls, request: web.Request, settings: CookieSettings) -> FlowStore:
        """The flows of ``request``'s browser: the cookie is opened on the first call only."""
        flows = request.get(_FLOWS)
        if flows is None:
            flows = request[_FLOWS] = cls(request.app[FLOW_COOKIE].open_session(request), settings)
        return flows

    @property
    def session(self) -> Session:
        """What goes back into the cookie: ``flows`` (nonce → wire entry) and ``done`` (fingerprints)."""
        return self._session

    @property
    def data(self) -> MutableMapping[str, Any]:
        return self._data

    def _live(self, now: float) -> dict[str, FlowEntry]:
        """The unexpired flows; an entry that is not a flow this version reads counts as none."""
        flows = self._data.get("flows")
        if not isinstance(flows, dict):
            return {}
        live = {}
        for nonce, wire in flows.items():
            try:
                flow = FlowEntry.from_wire(wire)
            except StateError:
                continue
            if flow.expires > now:
                live[nonce] = flow
        return live

    def _keep(self, flows: dict[str, FlowEntry]) -> None:
        self._data["flows"] = {nonce: flow.to_wire() for nonce, flow in flows.items()}
        self.changed = True

    def add(self, nonce: str, flow: FlowEntry, *, now: float | None = None) -> None:
        """Keep ``flow``; raise :class:`FlowTooLarge` when even alone it would not fit a cookie."""
        current = time.time() if now is None else now
        wire = flow.to_wire()  # the new flow is encoded once: for the size check, then with its expiry
        if not _surely_fits(wire) and len(_dumps(wire)) > MAX_FLOWS_JSON - 100:
            raise FlowTooLarge("the request is too large to remember in a cookie")
        expires = int(current) + self._settings.max_age
        wire["x"] = expires  # where to_wire puts it: last
        flows = self._live(current)
        if not flows:  # the browser's first flow (or its others expired): nothing to trim
            self._data["flows"] = {nonce: wire}
            self.changed = True
            return
        flows[nonce] = dataclasses.replace(flow, expires=expires)
        wires = {key: wire if key == nonce else entry.to_wire() for key, entry in flows.items()}
        self._trim(flows, wires)
        self._data["flows"] = wires
        self.changed = True

    def _trim(self, flows: dict[str, FlowEntry], wires: dict[str, dict[str, Any]]) -> None:
        """Browsers drop a cookie over 4096 bytes, and with it every flow: past ``max_flows``, or
        past what still fits once encrypted (Fernet and base64 add about a third), the oldest goes.

        The size of the flows' JSON is added up from each entry's, each encoded once, rather than
        encoding the whole dict again after each removal.
        """
        sizes = {key: len(_dumps(key)) + 1 + len(_dumps(wire)) for key, wire in wires.items()}
        total = 1 + sum(size + 1 for size in sizes.values())  # braces and the commas between
        while len(flows) > 1 and (len(flows) > self._settings.max_flows or total > MAX_FLOWS_JSON):
            oldest = min(flows, key=lambda key: flows[key].expires)
            del flows[oldest], wires[oldest]
            total -= sizes.pop(oldest) + 1

    def take(self, nonce: str, *, provider: str, now: float | None = None) -> FlowEntry | None:
        """Remove and return the flow for ``nonce`` (single use), or ``None``.

        A flow that belongs to another ``provider`` is left alone (``None``): a callback at the
        wrong provider's path must not spend the flow the right one will complete.

        A short fingerprint of each completed nonce stays behind for a while, so that a callback
        opened twice (reload, back button) can be told apart from a forged or foreign one.
        """
        current = time.time() if now is None else now
        flows = self._live(current)
        flow = flows.get(nonce)
        if flow is not None and flow.provider != provider:
            flow = None
        elif flow is not None:
            del flows[nonce]
            done = [mark for mark in self._data.get("done", []) if isinstance(mark, str)]
            self._data["done"] = (done + [_fingerprint(nonce)])[-self._settings.max_flows :]
        self._keep(flows)
        return flow

    def was_completed(self, nonce: str) -> bool:
        return _fingerprint(nonce) in self._data.get("done", [])


#: The request's flows, once a handler asked for them.
_FLOWS = web.RequestKey("flows", FlowStore)


def save_flows(request: web.Request, response: web.StreamResponse) -> None:
    """Send the flows back in the cookie if a handler changed them (a cookie that was written to
    is saved, one only read is not)."""
    flows = request.get(_FLOWS)
    if flows is not None and flows.changed:
        request.app[FLOW_COOKIE].write_session(response, flows.session)


def _surely_fits(flow: dict[str, Any]) -> bool:
    """True when ``flow`` is certainly small enough alone, without encoding it (the cookie is
    encoded once, when it is saved): JSON writes a character as at most 12 (``\\ud83d\\ude00``
    for one outside the BMP), and each entry adds its key, quotes, colon and comma. Anything but
    text values: not known."""
    size = 2
    for key, value in flow.items():
        if not isinstance(value, str):
            return False
        size += len(key) + 12 * len(value) + 6
    return size <= MAX_FLOWS_JSON - 100


def _fingerprint(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()[:12]
