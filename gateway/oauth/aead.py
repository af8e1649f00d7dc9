"""AES-256-GCM under a key derived afresh for each value: the gateway's cheap seal.

Fernet (:mod:`gateway.oauth.seal`) costs some 13 µs a value in Python (padding, a cipher context
and an HMAC object built per call); one AES-GCM call in C does the same job in about 2 µs. The
properties kept are Fernet's: authenticated encryption under the gateway's ``keys`` (the first
seals, every key opens, so keys rotate without breaking values in flight), the time the value was
sealed, authenticated, for the opener to judge, and no practical limit on how many values one key
seals.

That last one is why the key is derived per value: AES-GCM with random 96-bit nonces under one
key must stop well before 2³² values (NIST SP 800-38D §8.3), and a repeated nonce gives away the
authentication key. Here each value carries 24 random bytes (192 bits); its key is
BLAKE2b-MAC(master, those bytes) (RFC 7693, keyed mode: a PRF), so no key seals two values and
the GCM nonce can be fixed (the construction of XChaCha20 and XAES-256-GCM). The master of each
configured key comes from HKDF-SHA256 (RFC 5869) with the user's own ``label``, so two users
(the flow cookie, the sealed code) never open each other's values, and the configured key is
never used by two algorithms directly.

A value is URL-safe base64 (RFC 4648 §5) without its ``=`` padding (§3.2 allows leaving it out:
a value then needs no quoting in a URL, where the code travels) of::

    version (1 byte, 0x01) | sealed at (8 bytes, big-endian epoch seconds) | random (24) | AES-GCM ciphertext and tag (16)

with version and time as the GCM associated data. It never starts ``gAAAAA`` as every Fernet
token does, so an opener tells the two apart by their first characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["KeyedAead", "VERSION", "FERNET_PREFIX"]

VERSION = 0x01
#: What every Fernet token starts with (version byte 0x80, then the high bytes of its timestamp).
FERNET_PREFIX = "gAAAAA"
_HEAD = struct.Struct(">BQ")
_RANDOM = 24
_TAG = 16
_NONCE = bytes(12)
#: BLAKE2b's personalisation: the per-value keys of this construction and nothing else.
_PERSON = b"gateway-aead-v1"


class KeyedAead:
    """Seals and opens bytes under ``keys`` (the gateway's ``keys``, Fernet keys' text, in order)
    for one ``label``'s use."""

    def __init__(self, keys: Sequence[str], label: bytes) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._masters = tuple(_master(key, label) for key in keys)

    def seal(self, data: bytes, *, now: int) -> str:
        head = _HEAD.pack(VERSION, now)
        salt = os.urandom(_RANDOM)
        box = AESGCM(_value_key(self._masters[0], salt)).encrypt(_NONCE, data, head)
        return base64.urlsafe_b64encode(head + salt + box).rstrip(b"=").decode("ascii")

    def open(self, token: str) -> tuple[int, bytes] | None:
        """``(sealed at, data)`` of a value one of the keys sealed for this label; ``None`` for
        anything else (forged, altered, another key's or label's, not a sealed value at all)."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        start = _HEAD.size + _RANDOM
        if len(raw) < start + _TAG or raw[0] != VERSION:
            return None
        head, salt, box = raw[: _HEAD.size], raw[_HEAD.size : start], raw[start:]
        for master in self._masters:
            try:
                data = AESGCM(_value_key(master, salt)).decrypt(_NONCE, box, head)
            except InvalidTag:
                continue
            return _HEAD.unpack(head)[1], data
        return None


def _master(key: str, label: bytes) -> bytes:
    """HKDF-SHA256 of one configured key (a Fernet key's 32 bytes) for ``label`` only."""
    raw = base64.urlsafe_b64decode(key.encode("ascii"))
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=label).derive(raw)


def _value_key(master: bytes, salt: bytes) -> bytes:
    return hashlib.blake2b(salt, key=master, digest_size=32, person=_PERSON).digest()
