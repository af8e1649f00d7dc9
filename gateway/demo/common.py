"""DEMO ONLY: what the demo upstream and the demo platform share (settings, app keys, limits).

The demo keeps no server memory, like the gateway: everything it must remember between two
requests travels sealed in a hidden form field, a code, a token or a cookie. That is what lets
several replicas serve one demo flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDict

from gateway.oauth.responses import redirect_headers
from gateway.oauth.seal import Sealer, SealError

__all__ = [
    "DemoSettings",
    "DEMO_SETTINGS",
    "redirect",
    "DEMO_HTTP",
    "MAX_FORM_BYTES",
    "MAX_FIELD",
    "read_form",
    "open_field",
]

#: Demo forms are a handful of short fields; anything larger is not ours.
MAX_FORM_BYTES = 16 * 1024
#: The longest single value (a sealed value is a few hundred characters).
MAX_FIELD = 4096


@dataclass(frozen=True)
class DemoSettings:
    """Where the demo lives and how it seals; fixed when :func:`gateway.demo.setup_demo` runs."""

    public_url: str
    sealer: Sealer

    @property
    def gateway_callback(self) -> str:
        """The redirect URI the gateway registers with the demo upstream (mapping name "demo")."""
        return f"{self.public_url}/demo/callback"

    @property
    def platform_callback(self) -> str:
        """The redirect URI the demo platform registers with the gateway (see demo.yaml)."""
        return f"{self.public_url}/_demo/platform/callback"


DEMO_SETTINGS: web.AppKey[DemoSettings] = web.AppKey("demo_settings", DemoSettings)
#: The demo platform's HTTP client (it calls the gateway's /demo/token); closed on shutdown.
DEMO_HTTP: web.AppKey[ClientSession] = web.AppKey("demo_http", ClientSession)


async def read_form(request: web.Request) -> MultiDict[str] | None:
    """The urlencoded form body, or ``None`` when it is too large or malformed to be a demo form.

    Checked before reading so an oversized body never reaches the parser; the app's own
    ``client_max_size`` still bounds a chunked body that declares no length. File uploads are
    no part of any demo form and are dropped.
    """
    length = request.content_length
    if length is not None and length > MAX_FORM_BYTES:
        return None
    try:
        form = await request.post()
    except (ValueError, LookupError, AssertionError, RuntimeError, RequestPayloadError):
        # Not UTF-8 for its charset (UnicodeDecodeError), an unknown charset (LookupError),
        # broken multipart (ValueError, AssertionError, RuntimeError in aiohttp's parser):
        # not a form a demo page sent, so the caller answers its 400 page.
        return None
    fields: MultiDict[str] = MultiDict()
    for key, value in form.items():
        if isinstance(value, str):
            fields.add(key, value)
    return fields


def open_field(sealer: Sealer, purpose: str, value: str | None) -> dict[str, Any] | None:
    """Open a sealed form field or token; ``None`` for anything missing, oversized or not ours."""
    if not value or len(value) > MAX_FIELD:
        return None
    try:
        return sealer.open(purpose, value)
    except SealError:
        return None


def redirect(location: str, *, carries_secret: bool = True) -> web.Response:
    """A 302 with the gateway's own redirect headers (:func:`gateway.oauth.responses.redirect_headers`)."""
    return web.Response(status=302, headers=redirect_headers(location, carries_secret=carries_secret))
