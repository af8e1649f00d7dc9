"""The ops listener: /metrics, /healthz and /readyz on a port of their own (``metrics:`` in gateway.yaml).

Why a second port: /metrics tells anyone who can reach it which providers are served and how they
fail, so it belongs behind a NetworkPolicy, not on the port the internet reaches; and probes (the
kubelet's, the image's HEALTHCHECK) want plain http on a fixed port even when the public listener
speaks TLS. The ops app shares the main app's runtime, HTTP client and metrics registry, so
``/readyz`` here means exactly what it means on the public port.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.config.settings import MetricsListen
from gateway.observe.metrics import METRICS
from gateway.web.app import healthz, readyz
from gateway.web.appkeys import HTTP_CLIENT, RUNTIME

__all__ = ["ops_listener"]

log = logging.getLogger(__name__)


def _ops_app(main: web.Application) -> web.Application:
    ops = web.Application()
    ops[RUNTIME] = main[RUNTIME]
    ops[HTTP_CLIENT] = main[HTTP_CLIENT]
    ops.router.add_get("/healthz", healthz)
    ops.router.add_get("/readyz", readyz)
    ops.router.add_get("/metrics", main[METRICS].handler)
    return ops


def ops_listener(listen: MetricsListen) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for the main app: serve the ops app while the main app runs.

    Append it after the HTTP client's context, so ``/readyz`` sees the client it reports on.
    """

    async def run(main: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(_ops_app(main), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, listen.host, listen.port)
        await site.start()
        log.info("ops listener (/metrics, /healthz, /readyz) on http://%s:%d", listen.host, listen.port)
        yield
        await runner.cleanup()

    return run
