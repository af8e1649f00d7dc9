"""Typed keys for what the application shares between handlers (aiohttp's ``web.AppKey``).

What a reload (SIGHUP) may replace — the config and the sealer built from its keys — lives in
one :class:`Runtime` object, swapped whole, so a request never sees half an old config and half
a new one. Handlers read it through :func:`runtime_of` at the start of each request. (The request
record, which the observe layer reads, lives in :mod:`gateway.observe.record`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.config.settings import Config
from gateway.oauth.refresh import RefreshGrace
from gateway.oauth.replay import CodeClaims
from gateway.oauth.seal import Sealer
from gateway.oauth.store import SharedStore
from gateway.upstream.http1 import Http1Client

__all__ = [
    "Runtime", "RuntimeHolder", "RUNTIME", "HTTP_CLIENT", "PUBLIC_HTTP_CLIENT", "runtime_of", "STORE", "CLAIMS", "GRACE",
]


@dataclass(frozen=True)
class Runtime:
    """One loaded config and the sealer for its keys."""

    config: Config
    sealer: Sealer

    @classmethod
    def of(cls, config: Config) -> Runtime:
        return cls(config, Sealer(config.keys, aead=config.seal_aead))


@dataclass
class RuntimeHolder:
    """The current :class:`Runtime`; ``current`` is replaced in one assignment on reload."""

    current: Runtime


RUNTIME = web.AppKey("runtime", RuntimeHolder)
HTTP_CLIENT = web.AppKey("http_client", Http1Client)
#: The client for upstream hosts a user named (:mod:`gateway.upstream.publicdns`): it connects only
#: to public addresses, looked up and checked for each connection.
PUBLIC_HTTP_CLIENT = web.AppKey("public_http_client", Http1Client)
#: What replicas share (:mod:`gateway.oauth.store`), and the guards built on it, once per app.
STORE = web.AppKey("store", SharedStore)
CLAIMS = web.AppKey("code_claims", CodeClaims)
GRACE = web.AppKey("refresh_grace", RefreshGrace)


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME].current
