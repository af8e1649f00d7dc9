"""The flow cookie's seal: AES-256-GCM under a key derived afresh for each cookie.

The flow cookie (:mod:`gateway.web.session`) is sealed on every ``/authorize`` and opened on
every ``/callback``, so its seal is on the browser endpoints' hot path. Fernet
(:mod:`gateway.oauth.seal`) costs some 13 µs a value in Python (padding, a cipher context and an
HMAC object built per call); one AES-GCM call in C does the same job in about 2 µs. The
properties kept are Fernet's: authenticated encryption under the gateway's ``keys`` (the first
seals, every key opens, so keys rotate without breaking flows in flight), a time the value was
sealed that the opener checks against the cookie's ``max_age`` (and a clock skew of 60 s, as
Fernet allows), and no practical limit on how many values one key seals.

That last one is why the key is derived per value: AES-GCM with random 96-bit nonces under one
key must stop well before 2³² values (NIST SP 800-38D §8.3), and a repeated nonce gives away
the authentication key. Here each value carries 24 random bytes (192 bits); its key is
BLAKE2b-MAC(master, those bytes) (RFC 7693, keyed mode: a PRF), so no key seals two values and
the GCM nonce can be fixed (the construction of XChaCha20 and XAES-256-GCM). The master of each
configured key comes from HKDF-SHA256 (RFC 5869) with a label of its own, so the key is never
used by two algorithms directly.

The value, URL-safe base64 (RFC 4648 §5, padded) of::

    version (1 byte, 0x01) | sealed at (8 bytes, big-endian epoch seconds) | random (24) | AES-GCM ciphertext and tag (16)

with version and time as the GCM associated data. A Fernet token (which always starts
``gAAAAA``: its version byte is 0x80) opens with the same keys as before, so flows a gateway
of the earlier version started still complete after an upgrade.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
import time
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.oauth.seal import SealError, build_fernet

__all__ = ["CookieSeal", "VERSION", "MAX_CLOCK_SKEW"]

VERSION = 0x01
#: Seconds a value may claim to be from the future (Fernet's own allowance).
MAX_CLOCK_SKEW = 60
_HEAD = struct.Struct(">BQ")
_RANDOM = 24
_TAG = 16
_NONCE = bytes(12)
_LABEL = b"gateway flow cookie v1"
#: BLAKE2b's personalisation: the per-value keys of this seal and nothing else.
_PERSON = b"gw-flow-cookie-1"
#: What every Fernet token starts with (version byte 0x80, then the high bytes of its timestamp).
_FERNET_PREFIX = "gAAAAA"


class CookieSeal:
    """Seals and opens the flow cookie's bytes under ``keys`` (the gateway's ``keys``, in order)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._legacy = build_fernet(keys)  # checks the keys, and opens what Fernet sealed
        self._masters = tuple(_master(key) for key in keys)

    def seal(self, data: bytes, *, now: float | None = None) -> str:
        head = _HEAD.pack(VERSION, int(time.time() if now is None else now))
        salt = os.urandom(_RANDOM)
        box = AESGCM(_value_key(self._masters[0], salt)).encrypt(_NONCE, data, head)
        return base64.urlsafe_b64encode(head + salt + box).decode("ascii")

    def open(self, token: str, *, max_age: int, now: float | None = None) -> bytes:
        """The bytes sealed in ``token`` within the last ``max_age`` seconds under one of the keys;
        :class:`~gateway.oauth.seal.SealError` for anything else (forged, altered, expired, sealed
        under a retired key, not a sealed value at all)."""
        current = int(time.time() if now is None else now)
        if token.startswith(_FERNET_PREFIX):
            try:
                return self._legacy.decrypt_at_time(token.encode("ascii"), max_age, current)
            except (InvalidToken, UnicodeEncodeError, ValueError, TypeError) as exc:
                raise SealError("not issued by this gateway, altered, expired, or sealed under a retired key") from exc
        try:
            raw = base64.urlsafe_b64decode(token)
        except (binascii.Error, ValueError) as exc:
            raise SealError("not a sealed value") from exc
        start = _HEAD.size + _RANDOM
        if len(raw) < start + _TAG or raw[0] != VERSION:
            raise SealError("not a sealed value")
        _, sealed_at = _HEAD.unpack_from(raw)
        if sealed_at + max_age < current or sealed_at > current + MAX_CLOCK_SKEW:
            raise SealError("expired")
        head, salt, box = raw[: _HEAD.size], raw[_HEAD.size : start], raw[start:]
        for master in self._masters:
            try:
                return AESGCM(_value_key(master, salt)).decrypt(_NONCE, box, head)
            except InvalidTag:
                continue
        raise SealError("not issued by this gateway, altered, or sealed under a retired key")


def _master(key: str) -> bytes:
    """HKDF-SHA256 of one configured key (a Fernet key's 32 bytes) for this seal only."""
    raw = base64.urlsafe_b64decode(key.encode("ascii"))
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_LABEL).derive(raw)


def _value_key(master: bytes, salt: bytes) -> bytes:
    return hashlib.blake2b(salt, key=master, digest_size=32, person=_PERSON).digest()
