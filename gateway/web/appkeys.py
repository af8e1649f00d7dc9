"""Typed keys for what the application shares between handlers (aiohttp's ``web.AppKey``).

What a reload (SIGHUP) may replace — the config and the sealer built from its keys — lives in
one :class:`Runtime` object, swapped whole, so a request never sees half an old config and half
a new one. Handlers read it through :func:`runtime_of` at the start of each request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web

from gateway.config.settings import Config
from gateway.oauth.refresh import RefreshGrace
from gateway.oauth.replay import CodeClaims
from gateway.oauth.seal import Sealer
from gateway.oauth.store import SharedStore
from gateway.upstream.failure import FailureKind

__all__ = [
    "Runtime", "RuntimeHolder", "RUNTIME", "HTTP_CLIENT", "PUBLIC_HTTP_CLIENT", "RECORD", "RequestRecord", "runtime_of", "record_of",
    "STORE", "CLAIMS", "GRACE",
]


@dataclass(frozen=True)
class Runtime:
    """One loaded config and the sealer for its keys."""

    config: Config
    sealer: Sealer

    @classmethod
    def of(cls, config: Config) -> Runtime:
        return cls(config, Sealer(config.keys))


@dataclass
class RuntimeHolder:
    """The current :class:`Runtime`; ``current`` is replaced in one assignment on reload."""

    current: Runtime


@dataclass
class RequestRecord:
    """What one request did, filled in by the handlers, logged and counted once by a middleware."""

    request_id: str
    provider: str = ""
    endpoint: str = ""
    outcome: str = ""
    grant: str = ""
    upstream_status: int | None = None
    upstream_seconds: float | None = None
    upstream_failure: FailureKind | Literal[""] = ""
    extra: dict[str, str] = field(default_factory=dict)


RUNTIME = web.AppKey("runtime", RuntimeHolder)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
#: The client for upstream hosts a user named (:mod:`gateway.upstream.publicdns`): it connects only
#: to public addresses, looked up and checked for each connection.
PUBLIC_HTTP_CLIENT = web.AppKey("public_http_client", aiohttp.ClientSession)
RECORD = web.RequestKey("record", RequestRecord)
#: What replicas share (:mod:`gateway.oauth.store`), and the guards built on it, once per app.
STORE = web.AppKey("store", SharedStore)
CLAIMS = web.AppKey("code_claims", CodeClaims)
GRACE = web.AppKey("refresh_grace", RefreshGrace)


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME].current


def record_of(request: web.Request) -> RequestRecord:
    """This request's record (a throwaway one outside the logging middleware, e.g. in unit tests)."""
    record = request.get(RECORD)
    if record is None:
        record = RequestRecord(request_id="-")
        request[RECORD] = record
    return record
