"""End-to-end fixtures: a real upstream (oidc-provider), the real gateway, a client playing Alexa.

Everything listens on 127.0.0.1. The gateway is configured the way an operator would do it: a
gateway.yaml and a mapping file written to disk and loaded by :func:`gateway.config.settings.load_config`.
"""

from __future__ import annotations

import asyncio
import socket
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
