"""HTTP Basic client authentication as RFC 6749 §2.3.1 spells it: one encoder, one decoder.

§2.3.1: "The client identifier is encoded using the application/x-www-form-urlencoded encoding
algorithm per Appendix B, and the encoded value is used as the username; the client password is
encoded using the same algorithm and used as the password" — then RFC 7617: ``id:secret``, UTF-8,
base64. Encoding first is what lets an id or secret hold ``:`` (it becomes ``%3A``, so it can not
split the pair), ``%`` (``%25``) and any non-ASCII character (its UTF-8 bytes, percent-encoded).

The gateway sends this header to upstreams (:mod:`gateway.upstream.client`), the demo platform and
``gateway linktest`` send it to the gateway, and :mod:`gateway.oauth.clientauth` reads it from
platforms — which often skip the encoding step, so the decoder returns the pair as sent and
:func:`form_decoded` gives the §2.3.1 reading for the caller to compare too.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, unquote_plus

__all__ = ["basic_auth_header", "decode_basic_auth", "form_decoded"]


def basic_auth_header(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` value: each part form-urlencoded, joined by ``:``, base64-encoded.

    Spaces are sent as ``%20`` (not Appendix B's ``+``): every form decoder reads ``%20`` as a space,
    while a server that skips the form-decoding step would keep a ``+`` as a plus.
    """
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode("ascii")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def decode_basic_auth(header: str) -> tuple[str, str] | None:
    """The ``(id, secret)`` of a Basic ``Authorization`` value, as sent (not yet form-decoded);
    ``None`` for another scheme, bad base64, bytes that are not UTF-8, or no ``:``."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII input are all ValueErrors
        return None
    client_id, colon, client_secret = decoded.partition(":")
    return (client_id, client_secret) if colon else None


def form_decoded(client_id: str, client_secret: str) -> tuple[str, str]:
    """The §2.3.1 reading of a decoded pair: each part form-urlencoded-decoded (``+`` is a space)."""
    return unquote_plus(client_id), unquote_plus(client_secret)
