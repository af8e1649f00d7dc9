"""OpenID Connect Discovery 1.0: a provider's endpoints read from its ``openid-configuration``.

A mapping that says ``upstream.discovery: https://issuer/.well-known/openid-configuration`` may leave
out ``upstream.authorize.url``, ``upstream.token.url`` and ``upstream.issuer``: they are filled from
the document when the mapping loads. The document is fetched once per URL per process (a cache),
synchronously, with a short deadline, because loading happens before the server starts; call
:func:`fetch` from a thread when an event loop is running in the same thread.

Checks (OpenID Connect Discovery 1.0 §4.3): the answer is a JSON object; ``issuer`` is identical
to the discovery URL without its ``/.well-known/openid-configuration`` suffix (mix-up defence);
``authorization_endpoint`` and ``token_endpoint`` are absolute https URLs (plain http only toward
a loopback host, for tests). Any failure is a :class:`DiscoveryError` whose text says what went
wrong; the loader reports it at the ``discovery:`` line.
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

from gateway.config.urls import is_loopback_host

__all__ = ["Discovered", "DiscoveryError", "fetch", "clear_cache", "WELL_KNOWN", "TIMEOUT"]

WELL_KNOWN = "/.well-known/openid-configuration"
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
    if url.endswith(WELL_KNOWN) and issuer.rstrip("/") != url[: -len(WELL_KNOWN)].rstrip("/"):
        raise DiscoveryError(
            f"the document's issuer {issuer!r} is not the issuer it was fetched from (OpenID Connect Discovery §4.3)"
        )
    return Discovered(
        issuer=issuer,
        authorization_endpoint=_check_url(document, "authorization_endpoint"),
        token_endpoint=_check_url(document, "token_endpoint"),
        document=document,
    )


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
