"""The rules a configured URL keeps: absolute http(s), https unless toward loopback, no fragment.

Used by the config builders, the redirect URI policy (:mod:`gateway.config.platforms`) and discovery.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

__all__ = ["is_loopback_host", "split_url", "url_problem"]

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback_host(host: str | None) -> bool:
    """True for the hosts where plain http is tolerable (RFC 8252 §7.3, local development).

    ``127.0.0.1.evil.example`` is not one: only ``localhost`` and real loopback addresses are.
    """
    if host is None:
        return False
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_url(value: str) -> SplitResult | None:
    """``urlsplit``, or ``None`` where it raises (``https://[::1`` is a problem, not a crash)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    return parts


def url_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an endpoint the gateway calls or names, or ``None``."""
    parts = split_url(value)
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"must be an absolute http(s) URL, not {value!r}"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return f"must use https (plain http only for localhost), not {value!r}"
    if parts.fragment:
        return f"must not have a #fragment: {value!r}"
    return None
