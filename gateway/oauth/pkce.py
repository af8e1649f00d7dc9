"""PKCE, RFC 7636 (https://www.rfc-editor.org/rfc/rfc7636), on both sides of the gateway.

* Platform side: a ``code_challenge`` received at ``/authorize`` is sealed into the code; ``/token``
  checks the ``code_verifier`` against it (§4.6). A malformed verifier is ``invalid_request``; a
  verifier that does not match is ``invalid_grant`` (§4.6).
* Upstream side: when a mapping says ``authorize.pkce: S256``, the gateway makes its own verifier
  (§4.1), keeps it in the flow cookie and the sealed code, and sends it with the exchange.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Literal, get_args

__all__ = ["VERIFIER", "CHALLENGE", "new_verifier", "challenge_of", "verify", "Method", "METHODS", "as_method"]

#: §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
#: §4.2: the challenge has the same alphabet (S256 gives exactly 43 base64url characters).
CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
#: §4.3 ``code_challenge_method``.
Method = Literal["S256", "plain"]
METHODS: tuple[Method, ...] = get_args(Method)


def as_method(value: object) -> Method | None:
    """``value`` as a §4.3 method (exactly, case included), or ``None``."""
    if value == "S256":  # written out: a generator over METHODS costs a frame per code redeemed
        return "S256"
    return "plain" if value == "plain" else None


def new_verifier() -> str:
    """A high-entropy verifier: 48 random bytes → 64 base64url characters (§7.1)."""
    return secrets.token_urlsafe(48)


def challenge_of(verifier: str, method: str = "S256") -> str:
    """§4.2: ``BASE64URL(SHA256(ASCII(code_verifier)))`` without padding, or the verifier for plain."""
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str, challenge: str, method: str) -> bool:
    """§4.6, in constant time."""
    return hmac.compare_digest(challenge_of(verifier, method).encode("ascii"), challenge.encode("ascii"))
