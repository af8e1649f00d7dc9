"""Running the gateway: one process per container, scaled by replicas.

Why not several workers on one port: the gateway is I/O-bound and keeps no state, so one asyncio
process per container uses a core well, and an orchestrator (Kubernetes, compose) already
restarts, scales and health-checks processes. Forking workers inside a container would hide
crashes from it and split metrics between processes.

Signals:
* SIGTERM / SIGINT: stop accepting connections, let requests in flight finish within
  ``shutdown_grace`` seconds (aiohttp's graceful shutdown), exit 0.
* SIGHUP: load the config and mappings again; if they are valid, swap them in atomically; if
  not, log every problem and keep serving the old config. Settings bound at start
  (``gateway.web.app._RESTART_ONLY``: connections, listen address, public URL, TLS, cookie, demo,
  request id header, metrics, trace, store) need a restart: a reload that changes one is refused
  and says which. Reloads run one at a time, in order (:mod:`gateway.web.reload`).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from gateway.config.settings import Config
from gateway.web.app import create_app
from gateway.web.heap import freeze_heap
from gateway.web.reload import Reloader
from gateway.web.runner import DRAIN, GatewayRunner, accept_error_handler

__all__ = ["serve", "ssl_context", "freeze_heap", "loop_factory"]

log = logging.getLogger("gateway")


def ssl_context(config: Config) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls.cert, config.tls.key)
    return context


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the ``uvloop`` extra; the container image has
    it), else asyncio's own (``None``). ``GATEWAY_LOOP=asyncio`` keeps asyncio's loop even with
    uvloop installed (to compare, or to rule the loop out when chasing a problem).

    uvloop runs the same code with less CPU per request (docs/performance.md).
    """
    if os.environ.get("GATEWAY_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def serve(config: Config, *, path: Path, host: str | None = None, port: int | None = None, fd: int | None = None) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads ``path``. ``fd``: an inherited socket, already
    bound, to listen on instead of ``config.host``/``config.port`` (no window in which another
    process can take the port between choosing it and binding it)."""
    app = create_app(config)
    from gateway.observe.otel import instrument

    instrument(app)  # OpenTelemetry: a no-op unless the otel extra is installed and OTEL_TRACES_EXPORTER is set

    async def on_sighup(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()
        reloader = Reloader(app, path, host=host, port=port)

        def reload() -> None:
            task = loop.create_task(reloader.reload())
            pending.add(task)
            task.add_done_callback(pending.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
        yield
        loop.remove_signal_handler(signal.SIGHUP)

    app.cleanup_ctx.append(on_sighup)
    factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        log.info("event loop: %s", "uvloop" if factory is not None else "asyncio")
        runner.run(_run(app, config, fd))
    log.info("stopped")


async def _run(app: web.Application, config: Config, fd: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain: answers close their connections, and what is still
    running after ``shutdown_grace`` is answered 503 (:mod:`gateway.web.runner`)."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(accept_error_handler)
    settings = config.connections
    runner = GatewayRunner(app, settings, access_log=None, shutdown_timeout=config.shutdown_grace + 1.0)
    await runner.setup()
    site: web.BaseSite
    if fd is None:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context(config), backlog=settings.backlog)
    else:
        site = web.SockSite(runner, socket.socket(fileno=fd), ssl_context=ssl_context(config), backlog=settings.backlog)
    await site.start()
    freeze_heap()
    log.info("listening on %s:%d%s", config.host, config.port, "" if fd is None else f" (inherited socket {fd})")
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        drain = app[DRAIN]
        drain.closing = True
        loop.call_later(config.shutdown_grace, drain.expired.set)
        await runner.cleanup()
