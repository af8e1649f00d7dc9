"""The application factory: routes, middlewares, shared resources, operational endpoints."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from dataclasses import replace

from aiohttp import web

from gateway.config.settings import Config
from gateway.oauth.refresh import RefreshGrace
from gateway.oauth.replay import CodeClaims
from gateway.oauth.store import SharedStore
from gateway.observe.logs import request_middleware
from gateway.observe.metrics import METRICS, Metrics
from gateway.upstream.http1 import Http1Client
from gateway.upstream.publicdns import PublicOnlyResolver
from gateway.web import optional
from gateway.web.appkeys import CLAIMS, GRACE, HTTP_CLIENT, PUBLIC_HTTP_CLIENT, RUNTIME, STORE, Runtime, RuntimeHolder, runtime_of
from gateway.web.handlers.authorize import authorize
from gateway.web.handlers.callback import callback
from gateway.web.handlers.revoke import revoke
from gateway.web.handlers.token import token
from gateway.web.metadata import METADATA_PATH, metadata
from gateway.web.opsport import healthz, ops_listener, readyz
from gateway.web.runner import DRAIN, Drain, request_guard
from gateway.web.session import FLOW_COOKIE, CurrentSeal, FlowCookie

__all__ = ["create_app", "reload_config", "MAX_BODY_BYTES", "PUBLIC_RESOLVER"]


#: Token requests are a few hundred bytes, or a refresh envelope of up to 16 KiB
#: (:data:`gateway.oauth.linkcontext.MAX_ENVELOPE_LENGTH`) and a little more; anything far larger
#: is refused before it is parsed.
MAX_BODY_BYTES = 24 * 1024
#: Upstream connections open at once to any one upstream host, out of 256 in all: a provider
#: that hangs holds at most a quarter of the pool, so the others' calls still find connections.
UPSTREAM_CONNECTIONS_PER_HOST = 64


#: The resolver of the public-only client (:mod:`gateway.upstream.publicdns`); tests set one that
#: answers as they script, before the app starts.
PUBLIC_RESOLVER = web.AppKey("public_resolver", PublicOnlyResolver)


#: Every upstream request names the gateway (RFC 9110 §10.1.5).
USER_AGENT = "gateway (OAuth2 account-linking gateway)"


async def _http_clients(app: web.Application) -> AsyncIterator[None]:
    app[HTTP_CLIENT] = shared = Http1Client(limit_per_host=UPSTREAM_CONNECTIONS_PER_HOST, user_agent=USER_AGENT)
    # A host a user named: connections only to the addresses its own lookup vetted, looked up
    # anew for each connection (no answer outlives its check).
    vetted = app.get(PUBLIC_RESOLVER) or PublicOnlyResolver()
    app[PUBLIC_HTTP_CLIENT] = public = Http1Client(
        limit_per_host=UPSTREAM_CONNECTIONS_PER_HOST, user_agent=USER_AGENT, resolver=vetted
    )
    yield
    await shared.close()
    await public.close()


def _sunsets(config: Config) -> dict[str, datetime.date]:
    """The served providers' sunset dates (``about.sunset.date``), for ``gateway_provider_sunset_days``."""
    return {
        name: mapping.about.sunset.date
        for name, mapping in config.providers.items()
        if mapping.about is not None and mapping.about.sunset is not None
    }


async def _store_context(app: web.Application) -> AsyncIterator[None]:
    """The store closes with the application (its Redis connections, if any)."""
    yield
    await app[STORE].close()


def create_app(config: Config) -> web.Application:
    """The gateway for ``config``: every provider's three endpoints plus the operational ones."""
    holder = RuntimeHolder(Runtime.of(config))
    metrics = Metrics()
    metrics.declare(config.providers)
    metrics.declare_sunsets(_sunsets(config))
    app = web.Application(
        # One middleware: the request line's, with the guard inside it (called, not chained).
        middlewares=[
            request_middleware(config.request_id_header, within=request_guard(lambda request: runtime_of(request).config.connections)),
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[RUNTIME] = holder
    app[METRICS] = metrics
    # The flow cookie, read and written by the browser endpoints only (gateway.web.handlers.browser).
    app[FLOW_COOKIE] = FlowCookie(CurrentSeal(holder), config.cookie)
    # What replicas share, and the two guards built on it: made once here, called by the handlers.
    store = SharedStore(config.store, metrics)
    app[STORE] = store
    app[CLAIMS] = CodeClaims(store)
    app[GRACE] = RefreshGrace(store, metrics)
    app[DRAIN] = Drain()
    app.cleanup_ctx.append(_http_clients)
    app.cleanup_ctx.append(_store_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if config.trace is not None:
        from gateway.web.traceviews import add_routes as add_trace_routes

        add_trace_routes(app, config.trace)
    if config.metrics is None:
        app.router.add_get("/metrics", metrics.handler)
    else:  # on the ops listener only (gateway.web.opsport), never on the public port
        app.cleanup_ctx.append(ops_listener(config.metrics))
    demo = optional.demo() if config.demo else None
    if demo is not None:  # the config loader refused demo: true without one
        demo.setup(app, public_url=config.public_url, sealer=holder.current.sealer)
    # aiohttp tries the /{provider}/… resources in this order, a pattern match each: /token, the
    # busiest (every refresh, hourly per link), first.
    app.router.add_route("*", "/{provider}/token", token)  # other methods get a JSON 405
    app.router.add_get("/{provider}/authorize", authorize)
    app.router.add_post("/{provider}/authorize", authorize)  # the tenant form posts back (gateway/web/tenant.py)
    app.router.add_get("/{provider}/callback", callback)
    app.router.add_route("*", "/{provider}/revoke", revoke)  # RFC 7009
    app.router.add_get(METADATA_PATH + "/{provider}", metadata)  # RFC 8414 §3
    return app


#: Settings that are bound when the server starts; a reload that changes them is refused.
_RESTART_ONLY = (
    "connections", "host", "port", "public_url", "tls", "cookie", "demo", "request_id_header",
    "metrics", "trace", "store",
)


def reload_config(app: web.Application, config: Config) -> list[str]:
    """Swap in ``config`` atomically; return what needs a restart instead (nothing is swapped then)."""
    current = app[RUNTIME].current.config
    if config.ephemeral_key and current.ephemeral_key:
        config = replace(config, keys=current.keys)  # a new random key would break every flow in flight
    if config.trace is not None and config.trace.generated and current.trace is not None and current.trace.generated:
        config = replace(config, trace=current.trace)  # the demo's random trace token stays
    needs_restart = [name for name in _RESTART_ONLY if getattr(current, name) != getattr(config, name)]
    if not needs_restart:
        app[RUNTIME].current = Runtime.of(config)
        app[METRICS].declare(config.providers)  # a provider the reload added starts its series at 0 too
        app[METRICS].declare_sunsets(_sunsets(config))
    return needs_restart
