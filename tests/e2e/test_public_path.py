"""A gateway behind a path: ``public_url: http://127.0.0.1:<proxy>/gw/`` and a reverse proxy on
127.0.0.1 that strips ``/gw``, as an ingress does. Browsers see only the proxy, so every cookie
path and redirect the gateway's pages set has to be the public one (``/gw/…``): the tenant form's
and the trace login's are checked here by a browser with a cookie jar, which sends a cookie only
to the path it was set for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from support.harness import ALEXA_PLATFORM_YAML, write_gateway_files
from support.sockets import bound_socket, port_of, start_site
from support.upstream import RecordingUpstream, Reply

from e2e.test_tenant_form import QUERY, Fields
from e2e.test_trace import TRACE_TOKEN
from gateway.config.settings import load_config
from gateway.web.app import create_app

PREFIX = "/gw"


def stripping_proxy(target: str) -> web.Application:
    """``/gw/<rest>`` → ``<target>/<rest>``: method, query, body, Cookie and Content-Type in;
    status, body, Location, Set-Cookie and Content-Type out."""
    app = web.Application()

    async def forward(request: web.Request) -> web.Response:
        url = f"{target}/{request.match_info['rest']}" + (f"?{request.query_string}" if request.query_string else "")
        headers = {name: request.headers[name] for name in ("Cookie", "Content-Type", "Authorization") if name in request.headers}
        async with aiohttp.ClientSession() as client:
            async with client.request(request.method, url, data=await request.read(), headers=headers, allow_redirects=False) as answer:
                response = web.Response(status=answer.status, body=await answer.read())
                for name in ("Location", "Content-Type"):
                    if name in answer.headers:
                        response.headers[name] = answer.headers[name]
                for cookie in answer.headers.getall("Set-Cookie", []):
                    response.headers.add("Set-Cookie", cookie)
                return response

    app.router.add_route("*", PREFIX + "/{rest:.*}", forward)
    return app


@pytest.fixture
async def behind_a_path(tmp_path: Path) -> AsyncIterator[tuple[str, RecordingUpstream]]:
    """The proxy's public base (``http://127.0.0.1:<port>/gw``) of a gateway with a ``shop``
    tenant mapping and the trace on; the upstream (whose one shop is 127.0.0.2)."""
    upstream = await RecordingUpstream(host="127.0.0.2").start()
    upstream.answer("/authorize", Reply(status=200, body="the upstream's login page", content_type="text/html"))
    mapping = (
        ALEXA_PLATFORM_YAML
        + "tenant: {name: shop, pattern: '2', label: Your shop number, allow_private: true}\n"
        "upstream:\n  client_id: up\n  client_secret: ${UPSTREAM_SECRET}\n"
        f"  authorize: {{url: 'http://127.0.0.{{shop}}:{upstream.port}/authorize'}}\n"
        f"  token: {{url: 'http://127.0.0.{{shop}}:{upstream.port}/token'}}\n"
    )
    gateway_sock, proxy_sock = bound_socket(), bound_socket()
    public = f"http://127.0.0.1:{port_of(proxy_sock)}{PREFIX}"
    path, env = write_gateway_files(tmp_path, {"shop": mapping}, port=port_of(gateway_sock),
                                    more=f"trace: {{token: {TRACE_TOKEN}}}\n")
    path.write_text(path.read_text().replace(f"public_url: http://127.0.0.1:{port_of(gateway_sock)}\n", f"public_url: {public}/\n"))
    config = load_config(path, env=env)
    assert config.public_url == public
    gateway = web.AppRunner(create_app(config), access_log=None)
    await gateway.setup()
    await start_site(gateway, sock=gateway_sock)
    proxy = web.AppRunner(stripping_proxy(f"http://127.0.0.1:{port_of(gateway_sock)}"), access_log=None)
    await proxy.setup()
    await start_site(proxy, sock=proxy_sock)
    yield public, upstream
    await proxy.cleanup()
    await gateway.cleanup()
    await upstream.stop()


async def test_the_tenant_form_works_behind_a_path(behind_a_path: tuple[str, RecordingUpstream]) -> None:
    public, upstream = behind_a_path
    url = f"{public}/shop/authorize?{urlencode(QUERY)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(url) as response:
            assert response.status == 200
            assert response.cookies[next(iter(response.cookies))]["path"] == f"{PREFIX}/shop/authorize"
            fields = Fields()
            fields.feed(await response.text())
        target = urlsplit(url)._replace(query=fields.action.removeprefix("?")).geturl()
        async with browser.post(target, data={**fields.inputs, "tenant": "2"}, allow_redirects=False) as response:
            assert response.status == 302, await response.text()  # the genuine post is not asked again
            assert response.headers["Location"].startswith(f"http://127.0.0.2:{upstream.port}/authorize?")


async def test_the_trace_login_works_behind_a_path(behind_a_path: tuple[str, RecordingUpstream]) -> None:
    public, _ = behind_a_path
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(f"{public}/_trace/") as response:
            assert response.status == 401
            assert f'action="{PREFIX}/_trace/login"' in await response.text()
        async with browser.post(f"{public}/_trace/login", data={"token": TRACE_TOKEN}, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == f"{PREFIX}/_trace/"
            assert response.cookies["gateway_trace"]["path"] == f"{PREFIX}/_trace/"
        async with browser.get(f"{public}/_trace/") as response:
            assert response.status == 200 and "No flow yet" in await response.text()
