"""The aiohttp baselines the bench compares the gateway with, one per process.

    python bench/servers.py KIND PORT [UPSTREAM_TOKEN_URL]

Each is the least a server of its kind must do, written the way a user would write it by hand, so
the ratios say what the gateway's own work costs:

* ``upstream``: the fake authorization server's token endpoint (a static JSON answer);
* ``hello``: aiohttp hello-world (the floor of any aiohttp handler);
* ``redirect``: a bare 302 (the floor of ``/callback`` and ``/authorize``, without a cookie);
* ``session``: aiohttp-session with an encrypted cookie keeping the redirect URI and state, then a
  302: the least a stateless ``/authorize`` does;
* ``relay``: a hand-written token relay: forwards the form to the upstream with one shared
  ClientSession and returns its JSON with the RFC 6749 §5.1 no-store headers.

Every server answers ``GET /healthz`` so the bench knows it is up.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp_session import get_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

ANSWER = b'{"access_token":"at-123","token_type":"bearer","expires_in":3600,"refresh_token":"rt-456","scope":"a b"}'
HTTP = web.AppKey("http", aiohttp.ClientSession)
UPSTREAM_URL = web.AppKey("upstream", str)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def upstream_token(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


async def redirect(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "https://auth.example/authorize?state=" + secrets.token_urlsafe(24)})


async def session_authorize(request: web.Request) -> web.Response:
    session = await get_session(request)
    nonce = secrets.token_urlsafe(24)
    session[nonce] = {"r": request.query["redirect_uri"], "s": request.query["state"]}
    return web.Response(status=302, headers={"Location": "https://auth.example/authorize?state=" + nonce})


async def relay_token(request: web.Request) -> web.Response:
    form = await request.post()
    async with request.app[HTTP].post(request.app[UPSTREAM_URL], data={k: str(v) for k, v in form.items()}) as answer:
        body = await answer.json()
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _client(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession()
    yield
    await app[HTTP].close()


def build(kind: str, upstream: str) -> web.Application:
    """The application of one baseline ``kind``; every route sits where the gateway's does (``/p/...``)."""
    middlewares = [session_middleware(EncryptedCookieStorage(Fernet(Fernet.generate_key())))] if kind == "session" else []
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/healthz", healthz)
    if kind == "upstream":
        app.router.add_post("/token", upstream_token)
    elif kind == "hello":
        app.router.add_get("/", hello)
    elif kind == "redirect":
        app.router.add_get("/p/callback", redirect)
    elif kind == "session":
        app.router.add_get("/p/authorize", session_authorize)
    elif kind == "relay":
        app[UPSTREAM_URL] = upstream
        app.cleanup_ctx.append(_client)
        app.router.add_post("/p/token", relay_token)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")
    return app


if __name__ == "__main__":
    web.run_app(
        build(sys.argv[1], sys.argv[3] if len(sys.argv) > 3 else ""),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        access_log=None,
        print=None,
    )
