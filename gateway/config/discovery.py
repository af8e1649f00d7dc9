"""OpenID Connect Discovery 1.0: a provider's endpoints read from its ``openid-configuration``.

A mapping that says ``upstream.discovery: https://issuer/.well-known/openid-configuration`` may leave
out ``upstream.authorize.url``, ``upstream.token.url`` and ``upstream.issuer``: they are filled from
the document when the mapping loads. The document is fetched once per URL per process (a cache),
synchronously, with a short deadline, because loading happens before the server starts; call
:func:`fetch` from a thread when an event loop is running in the same thread.

RFC 8414 authorization server metadata (``/.well-known/oauth-authorization-server``) is read the
same way (``gateway init --discovery`` takes either, or an issuer: :func:`read_metadata`).

Checks (OpenID Connect Discovery 1.0 §4.3, RFC 8414 §3.3): the answer is a JSON object; ``issuer`` is
identical to the discovery URL without its ``/.well-known/openid-configuration`` suffix, or to the
RFC 8414 URL without its well-known segment (mix-up defence);
``authorization_endpoint`` and ``token_endpoint`` are absolute https URLs (plain http only toward
a loopback host, for tests). Any failure is a :class:`DiscoveryError` whose text says what went
wrong; the loader reports it at the ``discovery:`` line.

It lives in ``config`` because it is part of loading: it runs only while a mapping is read (and for
``gateway init``), synchronously, before anything is served, and gives the loader the endpoints a
mapping leaves out; the request path never fetches a document. The upstream leg
(:mod:`gateway.upstream`) sends requests per request and sits above config.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.config.urls import is_loopback_host, url_problem

__all__ = [
    "Discovered", "DiscoveryError", "fetch", "clear_cache", "read_metadata", "metadata_urls", "expected_issuer",
    "WELL_KNOWN", "OAUTH_WELL_KNOWN", "TIMEOUT",
]

WELL_KNOWN = "/.well-known/openid-configuration"
#: RFC 8414 §3: inserted between the host and the issuer's path.
OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
TIMEOUT = 5.0  # seconds: loading waits for it, serving does not
_MAX_BYTES = 256 * 1024

_cache: dict[str, Discovered] = {}
_lock = threading.Lock()


class DiscoveryError(Exception):
    """The discovery document could not be fetched or is not usable."""


@dataclass(frozen=True)
class Discovered:
    """What a mapping takes from a discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    document: Mapping[str, Any]
    #: Where the document was read (for an issuer, the well-known URL that answered).
    url: str = ""


def _check_url(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise DiscoveryError(f"the document has no {name}")
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return value
    raise DiscoveryError(f"{name} must be an absolute https URL, not {value!r}")


def _read(url: str, timeout: float) -> Discovered:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "gateway"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked http(s) URL
            body = response.read(_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise DiscoveryError(f"can not fetch {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DiscoveryError(f"can not fetch {url}: {reason}") from None
    if len(body) > _MAX_BYTES:
        raise DiscoveryError(f"{url} answered more than {_MAX_BYTES // 1024} KiB")
    try:
        document = json.loads(body)
    except ValueError:
        raise DiscoveryError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise DiscoveryError(f"{url} did not answer a JSON object")
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise DiscoveryError("the document has no issuer")
    expected = expected_issuer(url)
    if expected is not None and issuer.rstrip("/") != expected.rstrip("/"):
        rule = "RFC 8414 §3.3" if OAUTH_WELL_KNOWN in url else "OpenID Connect Discovery §4.3"
        raise DiscoveryError(f"the document's issuer {issuer!r} is not the issuer it was fetched from, {expected!r} ({rule})")
    return Discovered(
        issuer=issuer,
        authorization_endpoint=_check_url(document, "authorization_endpoint"),
        token_endpoint=_check_url(document, "token_endpoint"),
        document=document,
        url=url,
    )


def expected_issuer(url: str) -> str | None:
    """The issuer a metadata URL belongs to (``None``: not a well-known URL, nothing to compare)."""
    if url.endswith(WELL_KNOWN):
        return url[: -len(WELL_KNOWN)]
    parts = urlsplit(url)
    if parts.path.startswith(OAUTH_WELL_KNOWN):  # RFC 8414 §3: https://host/.well-known/oauth-authorization-server/path
        return f"{parts.scheme}://{parts.netloc}{parts.path[len(OAUTH_WELL_KNOWN):]}"
    if parts.path.endswith(OAUTH_WELL_KNOWN):  # the OpenID Connect placement some servers use for it too
        return url[: -len(OAUTH_WELL_KNOWN)]
    return None


def metadata_urls(url: str) -> list[str]:
    """Where the metadata of ``url`` may be: the URL itself when it is a well-known one, else the
    issuer's OpenID Connect discovery document, then its RFC 8414 metadata."""
    if "/.well-known/" in url:
        return [url]
    issuer = url.rstrip("/")
    parts = urlsplit(issuer)
    return [issuer + WELL_KNOWN, f"{parts.scheme}://{parts.netloc}{OAUTH_WELL_KNOWN}{parts.path}"]


def read_metadata(url: str, *, timeout: float = TIMEOUT) -> Discovered:
    """The metadata for ``url`` (a well-known URL or an issuer), fetched now, not cached;
    ``DiscoveryError`` saying what each place answered when none is usable."""
    problem = url_problem(url)
    if problem:
        raise DiscoveryError(f"the metadata URL {problem}")
    reasons = []
    for candidate in metadata_urls(url):
        try:
            return _read(candidate, timeout)
        except DiscoveryError as exc:
            reasons.append(str(exc))
    raise DiscoveryError("; ".join(reasons))


def fetch(url: str, *, timeout: float = TIMEOUT) -> Discovered:
    """The discovery document at ``url``, from the cache or fetched now; ``DiscoveryError`` if unusable."""
    with _lock:
        cached = _cache.get(url)
    if cached is not None:
        return cached
    discovered = _read(url, timeout)
    with _lock:
        _cache[url] = discovered
    return discovered


def clear_cache() -> None:
    """Forget every fetched document (tests; a reload that must see a changed provider)."""
    with _lock:
        _cache.clear()
