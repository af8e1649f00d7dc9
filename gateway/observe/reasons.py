"""Why a link failed, in words: one home for the phrases ``gateway linktest`` and the flow trace share.

``gateway linktest`` finds the usual causes of "unable to link" from the outside; the trace
(:mod:`gateway.observe.trace`) sees them happen to a real user's link. Both name a cause the same way, so an
integrator who read one recognises the other.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from gateway.config.platforms import ALEXA_BUDGET

__all__ = [
    "ALEXA_BUDGET", "REFUSED", "UNREACHABLE", "upstream_failure", "format_mismatch", "callback_failure", "gateway_stopped_callback",
]

REFUSED = (
    "the upstream refused the gateway's own request: check upstream.client_id, upstream.client_secret "
    "and token.client_auth"
)
UNREACHABLE = "the upstream did not answer in time or could not be reached"
_BY_KIND = {
    "timeout": f"{UNREACHABLE}: it did not answer within the deadline (Alexa gives up after {ALEXA_BUDGET} s)",
    "connection": f"{UNREACHABLE}: the connection was refused or closed before a whole answer",
    "too_large": "the upstream answer is larger than 64 KiB: it is not a token answer",
    "http_5xx": "the upstream answered a server error (HTTP 5xx): an outage; the platform is told to retry later",
    "throttled": "the upstream throttled the gateway (HTTP 429 or 408); the platform is told to retry later",
    "refused": REFUSED,
    "invalid_grant": (
        "the upstream refused the grant (invalid_grant): the code was already used or expired, or the "
        "refresh token was revoked — the platform will ask the user to link again"
    ),
}


def format_mismatch(content_type: str, body: bytes, fmt: str) -> str | None:
    """``the upstream answered text/plain form data; the mapping reads json`` — or ``None``."""
    text = body.decode("utf-8", errors="replace").strip()
    shown = content_type.split(";")[0].strip() or "no content type"
    if not text:
        return None
    is_json = True
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        is_json = False
    if fmt == "json" and not is_json and "=" in text and text[:1] != "<":
        try:
            parse_qsl(text, strict_parsing=True)
        except ValueError:
            return None
        return f"the upstream answered {shown} form data; the mapping reads json (set answer.format: form or auto)"
    if fmt == "form" and is_json:
        return f"the upstream answered {shown} JSON; the mapping reads form (set answer.format: json or auto)"
    if "html" in content_type or text[:5].lower() in ("<!doc", "<html"):
        return f"the upstream answered an HTML page ({shown}): a proxy's, a firewall's or a login page, not a token answer"
    return None


def upstream_failure(kind: str, description: str = "") -> str:
    """The sentence for a ``gateway_upstream_failures_total`` kind (or ``invalid_grant``)."""
    sentence = _BY_KIND.get(kind, "the upstream answer could not be used")
    return f"{sentence} ({description})" if description else sentence


def callback_failure(outcome: str) -> str:
    """Why the callback did not go on to the platform (its request-record outcome)."""
    return {
        "lost_flow": (
            "the callback names no live flow in this browser: the flow cookie expired or was blocked, the "
            "callback was opened twice, or the upstream sent a state of its own"
        ),
        "issuer_mismatch": "the callback's iss is not the mapping's issuer (RFC 9207): a mix-up attack or a wrong issuer",
    }.get(outcome, f"the upstream sent the user back with error={outcome}")


def gateway_stopped_callback(cause: str) -> str:
    """Why the gateway sent ``server_error`` back to the platform after a callback that came back fine."""
    return {
        "unsafe_context": (
            "the upstream sent the user back with a value callback.keep refuses (it does not match its pattern, "
            "or it would send the token request to a host no pattern allows)"
        ),
        "code_too_long": (
            "the upstream's code is too long: sealed for the platform it would be longer than /token accepts"
        ),
    }[cause]
