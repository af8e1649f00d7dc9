"""The flow cookie: what the browser leg must remember between ``/authorize`` and ``/callback``.

aiohttp-session's :class:`EncryptedCookieStorage` seals the session with one Fernet key;
:class:`RotatingCookieStorage` gives it the gateway's MultiFernet instead, so keys rotate
without breaking flows in flight (first key seals, every key opens).

The session holds a small dict of *flows*, keyed by the random nonce that goes upstream as
``state`` (the CSRF check of RFC 6749 §10.12). Several link attempts in one browser (two tabs,
a retry after "back") each keep their own entry instead of clobbering one another; the oldest
is dropped past ``max_flows`` so the cookie stays well under the 4 KB browsers keep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

from aiohttp import web
from aiohttp_session import AbstractStorage, Session, get_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import MultiFernet

from gateway.config.settings import CookieSettings
from gateway.oauth.state import FlowEntry, StateError
from gateway.web.appkeys import RuntimeHolder

__all__ = ["CurrentFernet", "RotatingCookieStorage", "FlowStore", "FlowTooLarge", "MAX_FLOWS_JSON"]

#: The flows' JSON that still makes a cookie under 4096 bytes once encrypted and encoded.
MAX_FLOWS_JSON = 2600


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


class RotatingCookieStorage(EncryptedCookieStorage):
    """EncryptedCookieStorage over a MultiFernet (it only ever calls ``encrypt``/``decrypt``)."""

    def __init__(self, fernet: MultiFernet | CurrentFernet, settings: CookieSettings) -> None:
        AbstractStorage.__init__(
            self,
            cookie_name=settings.name,
            max_age=settings.max_age,
            path="/",
            secure=settings.secure,
            httponly=True,
            samesite="Lax",
        )
        self._fernet = fernet  # type: ignore[assignment]

    def load_cookie(self, request: web.Request) -> str | None:
        """The cookie's value, or ``None`` when it can not be a sealed value (not ASCII).

        aiohttp-session would encode a non-UTF-8 value and fail with a 500; a cookie that is not
        ours is simply no cookie.
        """
        value = super().load_cookie(request)
        return value if value is None or value.isascii() else None


class FlowStore:
    """The flows of one browser, in its session cookie."""

    def __init__(self, session: Session, settings: CookieSettings) -> None:
        self._session = session
        self._settings = settings

    @classmethod
    async def of(cls, request: web.Request, settings: CookieSettings) -> FlowStore:
        return cls(await get_session(request), settings)

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

    def add(self, nonce: str, flow: FlowEntry, *, now: float | None = None) -> None:
        """Keep ``flow``; raise :class:`FlowTooLarge` when even alone it would not fit a cookie."""
        current = time.time() if now is None else now
        if len(json.dumps(flow.to_wire(), separators=(",", ":"))) > MAX_FLOWS_JSON - 100:
            raise FlowTooLarge("the request is too large to remember in a cookie")
        flows = self._live(current)
        flows[nonce] = dataclasses.replace(flow, expires=int(current) + self._settings.max_age)
        # Browsers drop a cookie over 4096 bytes, and with it every flow: past max_flows, or past
        # what still fits once encrypted (Fernet and base64 add about a third), the oldest goes.
        while len(flows) > 1 and (
            len(flows) > self._settings.max_flows
            or len(json.dumps({nonce: flow.to_wire() for nonce, flow in flows.items()}, separators=(",", ":"))) > MAX_FLOWS_JSON
        ):
            oldest = min(flows, key=lambda key: flows[key].expires)
            del flows[oldest]
        self._keep(flows)

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


def _fingerprint(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()[:12]
