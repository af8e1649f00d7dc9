"""What the end-to-end tests share besides fixtures: the platform's and upstream's credentials,
the test mappings, a gateway started as ``gateway serve`` runs it, the user's walk through a link and
the platform's token request.

A module of its own, not conftest.py: pytest advises against importing from a conftest (the
fixtures live in tests/e2e/conftest.py and use these)."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from gateway.config.settings import Config, load_config
from gateway.oauth.seal import generate_key
from gateway.web.app import create_app
from support.oauth import basic
from support.oidc_provider import login_and_consent
from support.sockets import bound_socket, port_of, start_site
from support.upstream import AuthorizationServer

VENDOR = "M2AAAAAAAAAAAA"
ALEXA_REDIRECT = f"https://pitangui.amazon.com/api/skill/link/{VENDOR}"
PLATFORM_ID = "alexa-skill"
PLATFORM_SECRET = "alexa-skill-secret"
#: ``Authorization`` for the platform client, as Alexa sends it (HTTP Basic).
PLATFORM_BASIC = basic(PLATFORM_ID, PLATFORM_SECRET)
#: The ``platform:`` block of the test mappings: Alexa, this vendor, the secret from the environment.
ALEXA_PLATFORM_YAML = (
    "platform:\n"
    "  profile: alexa\n"
    f"  vendor_ids: [{VENDOR}]\n"
    f"  client_id: {PLATFORM_ID}\n"
    "  client_secret: ${PLATFORM_SECRET}\n"
)
UPSTREAM_ID = "gateway-client"
UPSTREAM_SECRET = "gateway-client-secret"
#: The same gateway registered a second time at the upstream, for client_secret_post.
UPSTREAM_POST_ID = "gateway-client-post"


@dataclass
class Gateway:
    """A running gateway and what a test needs to talk to it."""

    url: str
    config: Config
    runner: web.AppRunner

    def endpoint(self, name: str, provider: str = "oidc") -> str:
        return f"{self.url}/{provider}/{name}"

    def authorize_url(self, provider: str = "oidc", **params: str | None) -> str:
        query: dict[str, str | None] = {
            "client_id": PLATFORM_ID,
            "redirect_uri": ALEXA_REDIRECT,
            "state": "alexa-state-123",
            "response_type": "code",
            "scope": "openid profile",
            **params,
        }
        return f"{self.endpoint('authorize', provider)}?{urlencode({k: v for k, v in query.items() if v is not None})}"


def _block(text: str, indent: int) -> str:
    """YAML ``text`` (any indentation) re-indented to sit ``indent`` spaces deep in a mapping."""
    if not text.strip():
        return ""
    return textwrap.indent(textwrap.dedent(text).strip("\n") + "\n", " " * indent)


def mapping_yaml(
    upstream: AuthorizationServer,
    *,
    client_auth: str = "basic",
    upstream_client_id: str = UPSTREAM_ID,
    extra: str = "",
    platform_extra: str = "",
    upstream_extra: str = "",
    authorize_extra: str = "",
    token_extra: str = "",
    token_url: str | None = None,
) -> str:
    """The oidc mapping. ``extra`` is appended at the top level; ``platform_extra``,
    ``upstream_extra``, ``authorize_extra`` and ``token_extra`` add keys inside ``platform:``,
    ``upstream:``, ``upstream.authorize:`` and ``upstream.token:``; ``token_url`` points the token
    requests somewhere else than the oidc-provider (a recording or misbehaving test server)."""
    return (
        ALEXA_PLATFORM_YAML
        + _block(platform_extra, 2)
        + "upstream:\n"
        f"  issuer: {upstream.issuer}\n"
        f"  client_id: {upstream_client_id}\n"
        "  client_secret: ${UPSTREAM_SECRET}\n"
        + _block(upstream_extra, 2)
        + "  authorize:\n"
        f"    url: {upstream.authorization_endpoint}\n"
        "    params:\n"
        "      add:\n"
        "        prompt: consent\n"
        + _block(authorize_extra, 4)
        + "  token:\n"
        f"    url: {token_url or upstream.token_endpoint}\n"
        f"    client_auth: {client_auth}\n"
        + _block(token_extra, 4)
        + textwrap.dedent(extra)
    )


def write_gateway_files(
    tmp_path: Path,
    mappings: dict[str, str],
    *,
    port: int,
    keys: list[str] | None = None,
    upstream_secret: str = UPSTREAM_SECRET,
    more: str = "",
) -> tuple[Path, dict[str, str]]:
    """Write gateway.yaml and mappings/ as an operator would; return the config path and its env."""
    (tmp_path / "mappings").mkdir(exist_ok=True)
    for name, text in mappings.items():
        (tmp_path / "mappings" / f"{name}.yaml").write_text(text)
    key_list = ", ".join(f'"{key}"' for key in (keys if keys is not None else [generate_key()]))
    (tmp_path / "gateway.yaml").write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        f"public_url: http://127.0.0.1:{port}\n"
        f"keys: [{key_list}]\n"
        "cookie: {secure: false}\n"
        "upstream: {timeout: 3}\n" + more
    )
    return tmp_path / "gateway.yaml", {"PLATFORM_SECRET": PLATFORM_SECRET, "UPSTREAM_SECRET": upstream_secret}


async def start_gateway(
    tmp_path: Path,
    mappings: dict[str, str],
    *,
    sock: socket.socket | None = None,
    keys: list[str] | None = None,
    upstream_secret: str = UPSTREAM_SECRET,
) -> Gateway:
    """An in-process gateway listening on ``sock`` (or a socket bound here); it owns the socket."""
    sock = bound_socket() if sock is None else sock
    port = port_of(sock)
    try:
        path, env = write_gateway_files(tmp_path, mappings, port=port, keys=keys, upstream_secret=upstream_secret)
        config = load_config(path, env=env)
    except BaseException:
        sock.close()
        raise
    runner = web.AppRunner(create_app(config), access_log=None)  # as `gateway serve` runs it
    await runner.setup()
    url = await start_site(runner, sock=sock)
    return Gateway(url, config, runner)


#: The gateway's clients at the upstream. ``application_type: native`` makes oidc-provider accept
#: the loopback callback on whatever port the test's gateway has (RFC 8252 §7.3), so one provider
#: serves every test; the path is still matched exactly.
UPSTREAM_CLIENTS: list[dict[str, Any]] = [
    {"client_id": client_id, "client_secret": UPSTREAM_SECRET, "redirect_uris": ["http://127.0.0.1/oidc/callback"],
     "token_endpoint_auth_method": method, "application_type": "native"}
    for client_id, method in ((UPSTREAM_ID, "client_secret_basic"), (UPSTREAM_POST_ID, "client_secret_post"))
]


GatewayFactory = Callable[..., Awaitable[Gateway]]


def query_of(url: Any) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(str(url)).query).items()}


async def link(browser: aiohttp.ClientSession, gateway: Gateway, **params: str | None) -> dict[str, str]:
    """Play the user through the gateway and the upstream's login and consent; return what Alexa gets."""
    landing = await login_and_consent(browser, gateway.authorize_url("oidc", **params), stop_at_prefix="https://pitangui.amazon.com/")
    assert str(landing).startswith(ALEXA_REDIRECT + "?"), landing
    return query_of(landing)


#: The ``User-Agent`` of Alexa's token requests.
ALEXA_USER_AGENT = "Apache-HttpClient/4.5.x (Java/1.8.0_152)"


@dataclass(frozen=True)
class TokenAnswer:
    """What ``/token`` answered: the status, the JSON body, the headers, and how long the answer took."""

    status: int
    body: dict[str, Any]
    headers: CIMultiDictProxy[str]
    elapsed: float


async def post_token(
    platform: aiohttp.ClientSession,
    url: str,
    form: Mapping[str, str],
    *,
    auth: Literal["basic", "body"] | None = "basic",
    authorization: str = PLATFORM_BASIC,
    headers: Mapping[str, str] | None = None,
) -> TokenAnswer:
    """The platform's token request (RFC 6749 §4.1.3, §6) as Alexa sends it: a form-encoded POST whose
    client authenticates with HTTP Basic (``auth="basic"``: the ``authorization`` header, the platform
    client's by default), with ``client_id`` and ``client_secret`` in the body (``"body"``, §2.3.1), or
    not at all (``None``). Every answer of a token endpoint is JSON (§5.1, §5.2): that is checked here."""
    body = dict(form)
    sent = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": ALEXA_USER_AGENT, **(headers or {})}
    if auth == "basic":
        sent["Authorization"] = authorization
    elif auth == "body":
        body.update(client_id=PLATFORM_ID, client_secret=PLATFORM_SECRET)
    started = time.monotonic()
    async with platform.post(url, data=urlencode(body), headers=sent) as response:
        text = await response.text()
        elapsed = time.monotonic() - started
        assert response.content_type == "application/json", (response.status, text)
        return TokenAnswer(response.status, json.loads(text), response.headers, elapsed)
