"""The flow cookie's seal: :class:`~gateway.oauth.aead.KeyedAead` (AES-256-GCM under a key derived
for each cookie), with the cookie's age judged on opening.

The flow cookie (:mod:`gateway.web.session`) is sealed on every ``/authorize`` and opened on
every ``/callback``, so its seal is on the browser endpoints' hot path: the AEAD does in about
2 µs what Fernet did in 13. A cookie opens for ``max_age`` seconds after it was sealed, and not
when it claims to be from more than 60 s in the future (Fernet's own rules). A Fernet token
(which always starts ``gAAAAA``) opens with the same keys and rules as before, so flows a gateway
of the earlier version started still complete after an upgrade.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from cryptography.fernet import InvalidToken

from gateway.oauth.aead import FERNET_PREFIX, VERSION, KeyedAead
from gateway.oauth.seal import SealError, build_fernet

__all__ = ["CookieSeal", "VERSION", "MAX_CLOCK_SKEW"]

#: Seconds a value may claim to be from the future (Fernet's own allowance).
MAX_CLOCK_SKEW = 60
_LABEL = b"gateway flow cookie v1"


class CookieSeal:
    """Seals and opens the flow cookie's bytes under ``keys`` (the gateway's ``keys``, in order)."""

    def __init__(self, keys: Sequence[str], *, aead: bool = True) -> None:
        self._legacy = build_fernet(keys)  # checks the keys, and opens what Fernet sealed
        self._aead = KeyedAead(keys, _LABEL)
        #: False (``seal_format: fernet``): cookies are sealed with Fernet, as a gateway before
        #: December 2026 seals and opens them (a rolling upgrade with replicas of both versions).
        self.aead = aead

    def seal(self, data: bytes, *, now: float | None = None) -> str:
        sealed_at = int(time.time() if now is None else now)
        if not self.aead:
            return self._legacy.encrypt_at_time(data, sealed_at).decode("ascii")
        return self._aead.seal(data, now=sealed_at)

    def open(self, token: str, *, max_age: int, now: float | None = None) -> bytes:
        """The bytes sealed in ``token`` within the last ``max_age`` seconds under one of the keys;
        :class:`~gateway.oauth.seal.SealError` for anything else (forged, altered, expired, sealed
        under a retired key, not a sealed value at all)."""
        current = int(time.time() if now is None else now)
        if token.startswith(FERNET_PREFIX):
            try:
                return self._legacy.decrypt_at_time(token.encode("ascii"), max_age, current)
            except (InvalidToken, UnicodeEncodeError, ValueError, TypeError) as exc:
                raise SealError("not issued by this gateway, altered, expired, or sealed under a retired key") from exc
        opened = self._aead.open(token)
        if opened is None:
            raise SealError("not issued by this gateway, altered, or sealed under a retired key")
        sealed_at, data = opened
        if sealed_at + max_age < current or sealed_at > current + MAX_CLOCK_SKEW:
            raise SealError("expired")
        return data
