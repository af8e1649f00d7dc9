"""aiohttp answers for the OAuth core's data (:mod:`gateway.oauth.responses`): rendered here, once.

The core's errors render to a framework-free ``(status, body, headers)``, as authlib's do; these
functions put that, a token answer or a redirect into a ``web.Response``. Nothing else in the
gateway builds an OAuth answer.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from gateway.oauth.responses import NO_STORE, OAuthError, TokenAnswer, redirect_headers, token_body

__all__ = ["token_response", "token_error_response", "error_page", "redirect"]


#: A token answer's headers, as ``text=…, content_type="application/json", headers=NO_STORE`` makes
#: them, built once (each answer copies them).
_TOKEN_HEADERS = CIMultiDict({**NO_STORE, "Content-Type": "application/json; charset=utf-8"})


def token_response(body: TokenAnswer) -> web.Response:
    """RFC 6749 §5.1: a 200 JSON token answer that nobody caches."""
    return web.Response(body=token_body(body).encode(), headers=_TOKEN_HEADERS)


def token_error_response(err: OAuthError, *, basic_auth_used: bool = False) -> web.Response:
    """RFC 6749 §5.2: a JSON error; 401 + ``WWW-Authenticate`` for a client that tried HTTP Basic."""
    status, text, headers = err.token_error(basic_auth_used=basic_auth_used)
    return web.Response(status=status, text=text, content_type="application/json", headers=headers)


def error_page(err: OAuthError, *, title: str = "Account linking failed") -> web.Response:
    """A small HTML page for errors that must not redirect (unvalidated redirect URI, lost flow)."""
    status, text, headers = err.page(title=title)
    return web.Response(status=status, text=text, content_type="text/html", headers=headers)


def redirect(location: str, *, carries_secret: bool = True) -> web.Response:
    """A 302 answer. Returned rather than raised: ``raise HTTPFound`` halves aiohttp's throughput.

    Pages whose URL carries a code or token send ``Referrer-Policy: no-referrer`` (RFC 9700 §4.2.4).
    """
    return web.Response(status=302, headers=redirect_headers(location, carries_secret=carries_secret))
