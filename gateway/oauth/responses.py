"""RFC 6749 errors and token answers, as data: no web framework here.

Errors are raised anywhere as :class:`OAuthError` (authlib's shape: a class that carries its RFC
error code and HTTP status) and rendered, as authlib's are, to a framework-free ``(status, body,
headers)`` (:meth:`OAuthError.token_error`, :meth:`OAuthError.page`); the web layer
(:mod:`gateway.web.render`) turns that into an HTTP answer once, in the handler that knows where the
client stands:

* ``/token``: JSON, RFC 6749 §5.2 (400, or 401 with ``WWW-Authenticate`` for a client that
  authenticated with HTTP Basic);
* browser leg, redirect URI validated: a redirect carrying ``error``/``error_description``/``state``
  (§4.1.2.1, §4.2.2.1 — in the fragment for the implicit grant);
* browser leg, redirect URI *not* validated: a small HTML page, never a redirect (§4.1.2.1, §10.15).

Every ``error_description`` keeps to the character set of §4.1.2.1 and §5.2 (``%x20-21 / %x23-5B /
%x5D-7E``: printable ASCII without ``"`` and backslash), the gateway's own words and the upstream's
relayed ones alike: :func:`clean_description` runs on each :class:`OAuthError`, so no answer path
can forget it. Platforms that validate the field strictly would otherwise reject the whole answer.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from typing import Literal, NotRequired, TypedDict
from urllib.parse import quote

from gateway.oauth.jsontext import compact

__all__ = [
    "OAuthError",
    "InvalidRequest",
    "InvalidClient",
    "InvalidGrant",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
    "ServerError",
    "TemporarilyUnavailable",
    "AUTHORIZATION_ERRORS",
    "NO_STORE",
    "PAGE_HEADERS",
    "Rendered",
    "TokenAnswer",
    "token_body",
    "redirect_headers",
    "add_to_uri",
    "clean_description",
]

#: RFC 6749 §5.1 and §5.2: token answers must not be cached.
NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: ``json.dumps(…, separators=(",", ":"))`` without building an encoder per call.
_compact = compact()

#: An answer as data: HTTP status, body text, headers (the body's media type is the renderer's:
#: JSON for :meth:`OAuthError.token_error`, HTML for :meth:`OAuthError.page`).
Rendered = tuple[int, str, dict[str, str]]

#: What an HTML error page sends beside its body: no cache, no referrer.
PAGE_HEADERS: Mapping[str, str] = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

#: Error codes an authorization endpoint may send to a redirect URI (RFC 6749 §4.1.2.1).
AUTHORIZATION_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    }
)

class TokenAnswer(TypedDict):
    """An RFC 6749 §5.1 token answer as the gateway gives it (:func:`gateway.upstream.answer.normalise`).

    ``token_type`` is always ``Bearer`` (§7.1 says it is case-insensitive; platforms don't agree).
    """

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: NotRequired[int]
    refresh_token: NotRequired[str]
    scope: NotRequired[str]
    id_token: NotRequired[str]


#: RFC 6749 §5.2 ``error_description``: %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_REPLACE = {"\u00a7": "section ", '"': "'", "\\": "/"}


def clean_description(text: str) -> str:
    """``text`` in the §5.2 character set: ``§`` becomes ``section``, ``"`` becomes ``'``, ``\\``
    becomes ``/``, accented letters lose their accents (NFKD), line breaks and other control
    characters become spaces, and anything else left outside printable ASCII becomes ``?``."""
    if _DESCRIPTION.fullmatch(text):
        return text  # the gateway's own words, nearly always
    cleaned = []
    for char in unicodedata.normalize("NFKD", text):
        if char in _REPLACE:
            cleaned.append(_REPLACE[char])
        elif " " <= char <= "~":
            cleaned.append(char)
        elif unicodedata.combining(char):
            continue  # the accent of a letter NFKD split in two
        elif unicodedata.category(char)[0] in "CZ":
            cleaned.append(" ")  # controls, line and paragraph separators, odd spaces
        else:
            cleaned.append("?")
    return "".join(cleaned).replace("section  ", "section ")


class OAuthError(Exception):
    """An OAuth 2.0 error with its RFC 6749 code, a description safe to show, and an HTTP status.

    ``description`` is cleaned to the §5.2 character set (:func:`clean_description`) here, once,
    whoever wrote it."""

    error: str = "invalid_request"
    status: int = 400

    def __init__(self, description: str = "", *, error: str | None = None, status: int | None = None) -> None:
        description = clean_description(description)
        super().__init__(description)
        self.description = description
        if error is not None:
            self.error = error
        if status is not None:
            self.status = status

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def token_error(self, *, basic_auth_used: bool = False) -> Rendered:
        """RFC 6749 §5.2: a JSON error body; 401 and ``WWW-Authenticate`` for ``invalid_client``
        when the client tried HTTP Basic (§5.2, RFC 7235 §4.1); never cached."""
        headers = dict(NO_STORE)
        status = self.status
        if self.error == "invalid_client":
            if basic_auth_used:
                headers["WWW-Authenticate"] = 'Basic realm="gateway", charset="UTF-8"'
            status = 401
        return status, _compact(self.as_dict()), headers

    def page(self, *, title: str = "Account linking failed") -> Rendered:
        """A small HTML page, for errors that must not redirect (unvalidated redirect URI, lost flow)."""
        text = _PAGE.format(
            title=html.escape(title),
            message=html.escape(self.description or "The request could not be completed."),
            error=html.escape(self.error),
        )
        return self.status, text, dict(PAGE_HEADERS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error!r}, {self.description!r})"


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401; ``WWW-Authenticate`` is added when the client used HTTP Basic."""

    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class ServerError(OAuthError):
    """Something on the gateway's side of the link is wrong (upstream answer unusable, config)."""

    error = "server_error"
    status = 502


class TemporarilyUnavailable(OAuthError):
    """The upstream did not answer in time or could not be reached: retry later, do not unlink."""

    error = "temporarily_unavailable"
    status = 503


def token_body(answer: TokenAnswer) -> str:
    """RFC 6749 §5.1: the JSON text of a token answer (sent with :data:`NO_STORE`)."""
    return _compact(answer)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}
code{{background:#f2f2f2;padding:.1em .3em}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p><small>Error: <code>{error}</code></small></p></body></html>
"""


def add_to_uri(uri: str, params: Mapping[str, str], *, fragment: bool = False) -> str:
    """Append ``params`` to a validated redirect URI without touching what is already there.

    The query the URI came with (Alexa's ``?vendorId=``) is kept byte for byte; new parameters go
    after ``&`` (or ``?``), or into the fragment for the implicit grant (RFC 6749 §4.2.2).
    """
    encoded = "&".join([f"{_uri_part(name)}={_uri_part(value)}" for name, value in params.items()])
    if fragment:
        return f"{uri}#{encoded}"
    return f"{uri}{'&' if '?' in uri else '?'}{encoded}"


#: Characters ``quote(…, safe="")`` never changes (RFC 3986 §2.3 unreserved).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _uri_part(text: str) -> str:
    """``quote(text, safe="")``, as ``urlencode(…, quote_via=quote)`` writes each name and value,
    without its work for the common text that needs none (a sealed code, ``state``, ``code``)."""
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


def redirect_headers(location: str, *, carries_secret: bool = True) -> dict[str, str]:
    """The headers of a 302 to ``location``: never cached; a page whose URL carries a code or token
    also sends ``Referrer-Policy: no-referrer`` (RFC 9700 §4.2.4)."""
    headers = {"Location": location, "Cache-Control": "no-store"}
    if carries_secret:
        headers["Referrer-Policy"] = "no-referrer"
    return headers
