"""The flow cookie: what the browser leg must remember between ``/authorize`` and ``/callback``.

:class:`RotatingCookieStorage` is an aiohttp-session storage (an :class:`AbstractStorage`, as
aiohttp-session's own ``NaClCookieStorage`` is) that seals the session with the gateway's
MultiFernet, so keys rotate without breaking flows in flight (first key seals, every key opens).
It writes what ``EncryptedCookieStorage`` would — compact JSON, then Fernet — but does each step
once: the JSON encoder is built once, and the ``Set-Cookie`` line is written directly, since a
Fernet token (URL-safe base64) needs none of ``http.cookies``' quoting (RFC 6265 §4.1.1 allows
``=`` in a cookie value).

The session holds a small dict of *flows*, keyed by the random nonce that goes upstream as
``state`` (the CSRF check of RFC 6749 §10.12). Several link attempts in one browser (two tabs,
a retry after "back") each keep their own entry instead of clobbering one another; the oldest
is dropped past ``max_flows`` so the cookie stays well under the 4 KB browsers keep.

Only the browser endpoints carry the cookie, so no middleware reads or writes it for every
request: a handler asks for the flows (:meth:`FlowStore.of`, which opens the cookie once per
request), and the browser frame writes them back (:func:`save_flows`) when they changed, as
aiohttp-session's ``session_middleware`` would. ``/token``, ``/revoke`` and the operational
endpoints pay nothing for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from typing import Any

from aiohttp import hdrs, web
from aiohttp_session import AbstractStorage, Session
from cryptography.fernet import InvalidToken, MultiFernet

from gateway.config.settings import CookieSettings
from gateway.oauth.state import FlowEntry, StateError
from gateway.web.appkeys import RuntimeHolder

__all__ = [
    "CurrentFernet", "RotatingCookieStorage", "FLOW_COOKIE", "FlowStore", "FlowTooLarge", "MAX_FLOWS_JSON", "save_flows",
]

#: The flows' JSON that still makes a cookie under 4096 bytes once encrypted and encoded.
MAX_FLOWS_JSON = 2600

log = logging.getLogger(__name__)
#: Compact JSON, one encoder for every cookie (``json.dumps(…, separators=…)`` builds one per call).
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class FlowTooLarge(ValueError):
    """One flow alone is larger than a browser keeps in a cookie."""


class CurrentFernet:
    """The current runtime's MultiFernet, looked up on each use, so a reload can rotate keys."""

    def __init__(self, holder: RuntimeHolder) -> None:
        self._holder = holder

    def encrypt(self, data: bytes) -> bytes:
        return self._holder.current.sealer.fernet.encrypt(data)

    def decrypt(self, token: bytes, ttl: int | None = None) -> bytes:
        return self._holder.current.sealer.fernet.decrypt(token, ttl)


class RotatingCookieStorage(AbstractStorage):
    """aiohttp-session's storage for the flow cookie: JSON sealed with a (Multi)Fernet."""

    def __init__(self, fernet: MultiFernet | CurrentFernet, settings: CookieSettings) -> None:
        super().__init__(
            cookie_name=settings.name,
            max_age=settings.max_age,
            path="/",
            secure=settings.secure,
            httponly=True,
            samesite="Lax",
            encoder=_dumps,
        )
        self._fernet = fernet
        # What http.cookies.Morsel writes after the value for these parameters, in its order.
        self._attributes = f"; HttpOnly; Max-Age={settings.max_age}; Path=/; SameSite=Lax" + ("; Secure" if settings.secure else "")
        self._expires_at = -1
        self._expires = ""

    def load_cookie(self, request: web.Request) -> str | None:
        """The cookie's value, or ``None`` when it can not be a sealed value (not ASCII).

        aiohttp-session would encode a non-UTF-8 value and fail with a 500; a cookie that is not
        ours is simply no cookie.
        """
        value = super().load_cookie(request)
        return value if value is None or value.isascii() else None

    async def load_session(self, request: web.Request) -> Session:
        cookie = self.load_cookie(request)
        if cookie is None:
            return Session(None, data=None, new=True, max_age=self.max_age)
        try:
            data = self._decoder(self._fernet.decrypt(cookie.encode("ascii"), ttl=self.max_age).decode("utf-8"))
        except InvalidToken:  # another key, expired, or not a token at all: a fresh session
            log.debug("flow cookie could not be opened; starting a fresh one")
            return Session(None, data=None, new=True, max_age=self.max_age)
        return Session(None, data=data, new=False, max_age=self.max_age)

    async def save_session(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        if session.empty:
            self.save_cookie(response, "", max_age=session.max_age)  # aiohttp's del_cookie
            return
        token = self._fernet.encrypt(self._encoder(self._get_session_data(session)).encode("utf-8")).decode("ascii")
        response.headers.add(hdrs.SET_COOKIE, f"{self.cookie_name}={token}; expires={self._expiry()}{self._attributes}")

    def _expiry(self) -> str:
        """``Expires`` for a cookie set now (the same second gives the same text: made once)."""
        now = int(time.time())
        if now != self._expires_at:
            self._expires_at = now
            self._expires = time.strftime("%a, %d-%b-%Y %H:%M:%S GMT", time.gmtime(now + (self.max_age or 0)))
        return self._expires


#: The application's flow cookie storage (made once by the app factory).
FLOW_COOKIE = web.AppKey("flow_cookie", RotatingCookieStorage)


class FlowStore:
    """The flows of one browser, in its session cookie."""

    def __init__(self, session: Session, settings: CookieSettings) -> None:
        self._session = session
        self._settings = settings
        #: True once the flows were written to (even unchanged), so the cookie is sent back.
        self.changed = False

    @classmethod
    async def of(cls, request: web.Request, settings: CookieSettings) -> FlowStore:
        """The flows of ``request``'s browser: the cookie is opened on the first call only."""
        flows = request.get(_FLOWS)
        if flows is None:
            flows = request[_FLOWS] = cls(await request.app[FLOW_COOKIE].load_session(request), settings)
        return flows

    @property
    def session(self) -> Session:
        return self._session

    @property
    def had_cookie(self) -> bool:
        """False when the browser sent no (readable) flow cookie at all."""
        return not self._session.new

    def _live(self, now: float) -> dict[str, FlowEntry]:
        """The unexpired flows; an entry that is not a flow this version reads counts as none."""
        flows = self._session.get("flows")
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
        self._session["flows"] = {nonce: flow.to_wire() for nonce, flow in flows.items()}
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
            self._session["flows"] = {nonce: wire}
            self.changed = True
            return
        flows[nonce] = dataclasses.replace(flow, expires=expires)
        wires = {key: wire if key == nonce else entry.to_wire() for key, entry in flows.items()}
        self._trim(flows, wires)
        self._session["flows"] = wires
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
            done = [mark for mark in self._session.get("done", []) if isinstance(mark, str)]
            self._session["done"] = (done + [_fingerprint(nonce)])[-self._settings.max_flows :]
        self._keep(flows)
        return flow

    def was_completed(self, nonce: str) -> bool:
        return _fingerprint(nonce) in self._session.get("done", [])


#: The request's flows, once a handler asked for them.
_FLOWS = web.RequestKey("flows", FlowStore)


async def save_flows(request: web.Request, response: web.StreamResponse) -> None:
    """Send the flows back in the cookie if a handler changed them (aiohttp-session's rule: a
    session that was written to is saved, one only read is not)."""
    flows = request.get(_FLOWS)
    if flows is not None and flows.changed:
        await request.app[FLOW_COOKIE].save_session(request, response, flows.session)


def _surely_fits(flow: dict[str, Any]) -> bool:
    """True when ``flow`` is certainly small enough alone, without encoding it (the cookie is
    encoded once, when it is saved): printable ASCII text is at most twice its length in JSON
    (``\\"``), and each entry adds its key, quotes, colon and comma. Anything else: not known."""
    size = 2
    for key, value in flow.items():
        if not (isinstance(value, str) and value.isascii() and value.isprintable()):
            return False
        size += len(key) + 2 * len(value) + 6
    return size <= MAX_FLOWS_JSON - 100


def _fingerprint(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()[:12]
