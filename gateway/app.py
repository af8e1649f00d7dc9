"""The application factory: routes, middlewares, shared resources, operational endpoints."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp_session import session_middleware

from .appkeys import CONFIG, HTTP_CLIENT, SEALER
from .config import Config
from .handlers.authorize import authorize
from .handlers.callback import callback
from .handlers.token import token
from .seal import Sealer
from .session import RotatingCookieStorage

__all__ = ["create_app", "AccessLogger", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

#: Token requests are a few hundred bytes; anything far larger is refused before it is parsed.
MAX_BODY_BYTES = 16 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessLogger(AbstractAccessLogger):
    """Access log without query strings: they carry codes, states and (implicit) tokens."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %.1fms", request.method, request.path, response.status, time * 1000
        )


@web.middleware
async def never_a_traceback(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No input reaches a 500 with a traceback: unexpected failures get a short, generic answer."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(
            {"error": "server_error", "error_description": "internal error"},
            status=500,
            headers={"Cache-Control": "no-store"},
        )


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """Readiness: a valid config is loaded and the upstream client is open."""
    client = request.app.get(HTTP_CLIENT)
    if client is None or client.closed:
        return web.Response(status=503, text="starting\n")
    providers = ", ".join(sorted(request.app[CONFIG].providers))
    return web.Response(text=f"ready: {providers}\n")


def _http_client_context(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    async def http_client(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300)
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=config.upstream_timeout),
            headers={"User-Agent": "gateway (OAuth2 account-linking gateway)"},
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        app[HTTP_CLIENT] = session
        yield
        await session.close()

    return http_client


def create_app(config: Config) -> web.Application:
    """The gateway for ``config``: every provider's three endpoints plus the operational ones."""
    sealer = Sealer(config.keys)
    storage = RotatingCookieStorage(sealer.fernet, config.cookie)
    app = web.Application(
        middlewares=[never_a_traceback, session_middleware(storage)],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONFIG] = config
    app[SEALER] = sealer
    app.cleanup_ctx.append(_http_client_context(config))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if config.demo:
        from .demo import setup_demo

        setup_demo(app, public_url=config.public_url, sealer=sealer)
    app.router.add_get("/{provider}/authorize", authorize)
    app.router.add_get("/{provider}/callback", callback)
    app.router.add_post("/{provider}/token", token)
    return app
