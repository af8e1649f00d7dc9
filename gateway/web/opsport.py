"""The ops listener: /metrics, /healthz and /readyz on a port of their own (``metrics:`` in gateway.yaml).

Why a second port: /metrics tells anyone who can reach it which providers are served and how they
fail, so it belongs behind a NetworkPolicy, not on the port the internet reaches; and probes (the
kubelet's, the image's HEALTHCHECK) want plain http on a fixed port even when the public listener
speaks TLS. The ops app shares the main app's runtime, HTTP client and metrics registry, so
``/readyz`` here means exactly what it means on the public port. The probe handlers live here, with
the listener made for them; :func:`gateway.web.app.create_app` mounts them on the public port too.

The same defences as the public listener (:mod:`gateway.web.runner`): the header and body deadlines
of ``connections:``, the quiet 400 for a malformed request, no traceback; and a cap of its own,
``connections.max`` or :data:`OPS_CONNECTIONS_MAX` if smaller, so a flood of half-sent requests
on this port can't take the descriptors the public listener needs (nor starve the probes for
long: each of those connections is closed at its header deadline).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from aiohttp import web

from gateway.config.settings import ConnectionSettings, MetricsListen
from gateway.observe.metrics import METRICS
from gateway.web.appkeys import HTTP_CLIENT, RUNTIME, runtime_of
from gateway.web.runner import DRAIN, GatewayRunner, request_guard

__all__ = ["ops_listener", "OPS_CONNECTIONS_MAX", "healthz", "readyz"]

log = logging.getLogger(__name__)

#: Probes and a scraper or two need a handful of connections; the rest of the descriptors are
#: the public listener's.
OPS_CONNECTIONS_MAX = 64


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """Readiness: a valid config is loaded and the upstream client is open."""
    client = request.app.get(HTTP_CLIENT)
    if client is None or client.closed:
        return web.Response(status=503, text="starting\n")
    providers = ", ".join(sorted(runtime_of(request).config.providers))
    return web.Response(text=f"ready: {providers}\n")


def ops_connections(settings: ConnectionSettings) -> ConnectionSettings:
    """The public listener's deadlines, with the ops listener's own (smaller) cap."""
    return replace(settings, max=min(settings.max, OPS_CONNECTIONS_MAX))


def _ops_app(main: web.Application, settings: ConnectionSettings) -> web.Application:
    ops = web.Application(middlewares=[request_guard(lambda request: settings)], client_max_size=1024)
    ops[RUNTIME] = main[RUNTIME]
    ops[HTTP_CLIENT] = main[HTTP_CLIENT]
    ops[DRAIN] = main[DRAIN]  # while the gateway drains, answers here close their connections too
    ops.router.add_get("/healthz", healthz)
    ops.router.add_get("/readyz", readyz)
    ops.router.add_get("/metrics", main[METRICS].handler)
    return ops


def ops_listener(listen: MetricsListen) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for the main app: serve the ops app while the main app runs.

    Append it after the HTTP client's context, so ``/readyz`` sees the client it reports on.
    """

    async def run(main: web.Application) -> AsyncIterator[None]:
        settings = ops_connections(main[RUNTIME].current.config.connections)
        runner = GatewayRunner(_ops_app(main, settings), settings, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, listen.host, listen.port, backlog=settings.backlog)
        await site.start()
        log.info("ops listener (/metrics, /healthz, /readyz) on http://%s:%d", listen.host, listen.port)
        yield
        await runner.cleanup()

    return run
