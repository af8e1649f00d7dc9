"""Sealed values: authenticated, encrypted, expiring blobs that carry state through the client.

The gateway keeps no database. Whatever it must remember between two requests travels with the
requests themselves, sealed with Fernet (AES-128-CBC + HMAC-SHA256, RFC-less but well reviewed):

* the authorization code handed to the platform, which ``/token`` opens again
  (RFC 6749 §4.1.2: short-lived, bound to the client and the redirect URI).

Keys rotate with :class:`cryptography.fernet.MultiFernet`: the first key seals, every key opens,
so a new key can be put in front while values sealed under the old one are still in flight.

A short-lived value may be sealed with AES-GCM instead (:mod:`gateway.oauth.aead`, ``aead=True``):
about 2 µs against Fernet's 13, with the same guarantees, under the same keys. :meth:`Sealer.open`
opens either form. Only values no replica of an earlier version must open are sealed so: the
code (minutes), not a refresh envelope or a grace entry (a replica not yet upgraded would refuse
them, and a refused refresh unlinks the user).

Each sealed value names its *purpose*; a value sealed for one purpose never opens as another,
so a code can not be replayed as a refresh token or the other way round. The flow cookie between
``/authorize`` and ``/callback`` is sealed under the same keys by its own, cheaper construction
(:mod:`gateway.oauth.cookieseal`, AES-GCM), which never opens a value sealed here nor the other way round.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.oauth.aead import FERNET_PREFIX, KeyedAead

__all__ = ["SealError", "Sealer", "generate_key"]


#: The AEAD's label for sealed values (the flow cookie has its own: neither opens the other's).
_AEAD_LABEL = b"gateway sealed value v1"


class SealError(Exception):
    """A sealed value could not be opened: forged, altered, expired, or sealed under another key."""


def generate_key() -> str:
    """Return a new random key in the text form that ``keys:`` takes (urlsafe base64, 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


def build_fernet(keys: Sequence[str]) -> MultiFernet:
    """The MultiFernet for ``keys``: the first seals, all open (key rotation)."""
    if not keys:
        raise ValueError("at least one key is needed")
    return MultiFernet([Fernet(key.encode("ascii")) for key in keys])


class Sealer:
    """Seals and opens small JSON payloads with a purpose and an expiry."""

    def __init__(self, keys: Sequence[str], *, aead: bool = True) -> None:
        self.fernet = build_fernet(keys)
        self._aead = KeyedAead(keys, _AEAD_LABEL)
        #: Whether short-lived values (the code) are sealed with AES-GCM; False: Fernet, which a
        #: gateway before December 2026 opens (``seal_format: fernet``, for a rolling upgrade).
        self.aead = aead

    def seal(self, purpose: str, payload: dict[str, Any], *, ttl: int, now: float | None = None, aead: bool = False) -> str:
        """Seal ``payload`` for ``purpose``; it stops opening ``ttl`` seconds from ``now``.
        ``aead``: with AES-GCM rather than Fernet (see the module docstring for which values)."""
        issued = time.time() if now is None else now
        body = {"p": purpose, "x": int(issued) + ttl, "d": payload}
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
        if aead:
            return self._aead.seal(raw, now=int(issued))
        return self.fernet.encrypt_at_time(raw, int(issued)).decode("ascii")

    def open(self, purpose: str, token: str, *, now: float | None = None) -> dict[str, Any]:
        """Open a value sealed for ``purpose``; raise :class:`SealError` on any problem.

        The error message says what went wrong in words safe to show a client: it never echoes
        the token itself.
        """
        current = time.time() if now is None else now
        if token.startswith(FERNET_PREFIX):
            try:
                raw = self.fernet.decrypt(token.encode("ascii"))  # expiry is checked below, on our own clock
            except (InvalidToken, UnicodeEncodeError, ValueError, TypeError) as exc:
                raise SealError("not issued by this gateway, altered, or sealed under a retired key") from exc
        else:
            opened = self._aead.open(token)
            if opened is None:
                raise SealError("not issued by this gateway, altered, or sealed under a retired key")
            raw = opened[1]
        try:
            body = json.loads(raw.decode())  # JSON that seal() wrote: UTF-8, no encoding to detect
            sealed_for, expires, payload = body["p"], body["x"], body["d"]
        except (ValueError, KeyError, TypeError) as exc:  # pragma: no cover - only a key holder can seal
            raise SealError("malformed sealed value") from exc
        if sealed_for != purpose:
            raise SealError(f"sealed for {sealed_for!r}, not {purpose!r}")
        if current >= expires:
            raise SealError("expired")
        if not isinstance(payload, dict):  # pragma: no cover - only a key holder can seal
            raise SealError("malformed sealed value")
        return payload
