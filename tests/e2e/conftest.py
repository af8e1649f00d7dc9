"""End-to-end fixtures: a real upstream (oidc-provider), the real gateway, a client playing Alexa,
``gateway serve`` on the shipped config. The recording upstream (``fake``) is in tests/conftest.py.

Everything listens on 127.0.0.1. The gateway is configured the way an operator would do it: a
gateway.yaml and a mapping file written to disk and loaded by :func:`gateway.config.settings.load_config`.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.harness import (
    UPSTREAM_CLIENTS,
    UPSTREAM_ID,
    UPSTREAM_SECRET,
    Gateway,
    GatewayFactory,
    mapping_yaml,
    start_gateway,
)
from support.oidc_provider import OidcUpstream, SharedOidcProviders
from support.processes import ROOT
from support.sockets import bound_socket, port_of


@pytest.fixture
def gateway_socket() -> Iterator[socket.socket]:
    """The socket this test's gateway will listen on, bound now so its port is known up front
    (for the config file, the upstream's redirect URI) and never free for another process to take.
    The gateway that starts on it owns it; closing it again here is harmless."""
    sock = bound_socket()
    yield sock
    sock.close()


@pytest.fixture
def gateway_port(gateway_socket: socket.socket) -> int:
    return port_of(gateway_socket)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "oidc_provider(**options): options for the `upstream` oidc-provider "
        "(pkce_required, rotate_refresh_token, access_token_ttl, extra_scopes)",
    )


@pytest.fixture(scope="session")
def oidc_providers() -> Iterator[SharedOidcProviders]:
    """The session's oidc-provider processes, one per distinct ``oidc_provider`` marker."""
    providers = SharedOidcProviders()
    yield providers
    providers.close()


@pytest.fixture
async def upstream(oidc_providers: SharedOidcProviders, request: pytest.FixtureRequest) -> OidcUpstream:
    """The real oidc-provider; ``@pytest.mark.oidc_provider(pkce_required=True, ...)`` configures it.

    Shared by the tests with the same options (see :class:`SharedOidcProviders`); each test keeps
    its own browser session and gateway port. Tests must not stop it."""
    marker = request.node.get_closest_marker("oidc_provider")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    return await asyncio.to_thread(oidc_providers.get, UPSTREAM_CLIENTS, **options)


@pytest.fixture
async def make_gateway(tmp_path: Path, gateway_socket: socket.socket, upstream: OidcUpstream) -> AsyncIterator[GatewayFactory]:
    """Start the gateway in front of the upstream; options change the oidc mapping."""
    started: list[Gateway] = []

    async def make(
        *,
        client_auth: str = "basic",
        upstream_client_id: str = UPSTREAM_ID,
        upstream_secret: str = UPSTREAM_SECRET,
        extra: str = "",
        keys: list[str] | None = None,
        platform_extra: str = "",
        upstream_extra: str = "",
        authorize_extra: str = "",
        token_extra: str = "",
        token_url: str | None = None,
    ) -> Gateway:
        mapping = mapping_yaml(
            upstream,
            client_auth=client_auth,
            upstream_client_id=upstream_client_id,
            extra=extra,
            platform_extra=platform_extra,
            upstream_extra=upstream_extra,
            authorize_extra=authorize_extra,
            token_extra=token_extra,
            token_url=token_url,
        )
        gateway = await start_gateway(
            tmp_path, {"oidc": mapping}, sock=gateway_socket, keys=keys, upstream_secret=upstream_secret
        )
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        await gateway.runner.cleanup()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway()


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """The user's browser: keeps cookies for IP hosts; redirects are followed by hand."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture
async def platform() -> AsyncIterator[aiohttp.ClientSession]:
    """Alexa's servers: no cookies, server to server."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
async def served() -> AsyncIterator[str]:
    """``gateway serve`` on the shipped gateway.yaml, as a newcomer starts it from the repository root: its base URL.
    Whatever it printed is checked when it stops: no code in a query string, no token."""
    sock = bound_socket()  # held by the test, inherited by `gateway serve` (--fd): no port to guess
    port = port_of(sock)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--fd", str(sock.fileno()),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, pass_fds=(sock.fileno(),),
        )
    finally:
        sock.close()
    base = f"http://localhost:{port}"
    try:
        async with aiohttp.ClientSession() as probe:
            for _ in range(100):
                try:
                    async with probe.get(f"{base}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if process.returncode is not None:
                    raise AssertionError((await process.stdout.read()).decode())  # type: ignore[union-attr]  # started with stdout=PIPE
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("gateway serve did not become ready within 10 s")
        yield base
    finally:
        if process.returncode is None:
            process.terminate()
        output = (await process.communicate())[0].decode()
        # Nothing secret is logged: no query strings with codes, no tokens.
        assert "code=" not in output and "access_token" not in output, output
