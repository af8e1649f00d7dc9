"""Per-link context end to end (gateway/oauth/linkcontext.py), against real servers on loopback.

* An upstream that refuses a token request without the ``state`` it saw at authorization time.
* An upstream with two "regions" (127.0.0.2 and 127.0.0.3, the same port): its callback names the
  region, the token endpoint of a user's tokens answers only on that region's host, and refreshes
  keep going there after two rotations of ``keys`` (``link_keys`` only grows).
* Refresh envelopes tampered with, truncated or sealed under an unknown key: ``invalid_grant``,
  and the upstream never hears of it.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from support.harness import (
    ALEXA_PLATFORM_YAML,
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    Gateway,
    query_of,
    write_gateway_files,
)
from support.redis import REDIS_SERVER, Redis
from support.sockets import bound_socket, port_of, start_site
from support.upstream import Recorded, RecordingUpstream, Reply

from gateway.config.settings import load_config
from gateway.oauth.linkcontext import link_sealer, open_refresh, seal_refresh
from gateway.oauth.seal import generate_key
from gateway.web.app import create_app

REGIONS = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
def link_redis(tmp_path: Path) -> Iterator[Redis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    (tmp_path / "redis").mkdir()
    server = Redis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@dataclass
class RegionalUpstream:
    """Authorization on 127.0.0.1; tokens only at the region the user's account lives in: the rules
    of a regional provider, played by the recording upstream on 127.0.0.1 and both regions.

    ``region_of_next_user`` decides where the next authorization puts the account. Each code
    remembers the ``state`` its authorization request carried; with ``require_state`` the token
    endpoint refuses a code exchange without that same ``state``.
    """

    server: RecordingUpstream
    region_of_next_user: str = REGIONS[1]
    require_state: bool = False
    #: The length of the refresh tokens it issues (0: short ones); long JWTs run to 8 KiB.
    refresh_length: int = 0
    #: The tokens its RFC 7009 endpoint was asked to revoke, in order.
    revoked: list[str] = field(default_factory=list)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code → (region, state)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token → region
    counter: itertools.count[int] = field(default_factory=itertools.count)
    #: What the next callback says as its whole-origin ``accounts-server`` (default: the region's own).
    origin_of_next_user: str | None = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def calls(self) -> list[tuple[str, dict[str, str]]]:
        """(host, form) of each token request, in order."""
        return [(request.host, request.form) for request in self.server.token_requests]

    def authorize(self, request: Recorded) -> Reply:
        code = f"code-{next(self.counter)}"
        self.codes[code] = (self.region_of_next_user, request.query["state"])
        back = {
            "code": code, "state": request.query["state"], "accounts_server": self.region_of_next_user,
            # Zoho's way: a hyphenated parameter holding a whole origin, and a location key
            "accounts-server": self.origin_of_next_user or f"http://{self.region_of_next_user}:{self.port}",
            "location": {REGIONS[0]: "two", REGIONS[1]: "three"}.get(self.region_of_next_user, "other"),
        }
        return Reply(status=302, headers={"Location": f"{request.query['redirect_uri']}?{urlencode(back)}"})

    def token(self, request: Recorded) -> Reply:
        host, form = request.host, request.form
        if form.get("grant_type") == "authorization_code":
            region, state = self.codes.pop(form.get("code", ""), ("", ""))
            if region != host:
                return Reply(status=400, body={"error": "invalid_grant", "error_description": "wrong region"})
            if self.require_state and form.get("state") != state:
                return Reply(status=400, body={"error": "invalid_request", "error_description": "state missing"})
        else:
            region = self.refresh_tokens.pop(form.get("refresh_token", ""), "")
            if region != host:
                return Reply(status=400, body={"error": "invalid_grant", "error_description": "unknown here"})
        refresh = f"rt-{secrets.token_hex(4)}"
        refresh += "j" * max(0, self.refresh_length - len(refresh))
        self.refresh_tokens[refresh] = host
        return Reply(
            body={"access_token": f"at-{host}-{len(self.calls)}", "token_type": "bearer", "expires_in": 3600, "refresh_token": refresh}
        )

    def revoke(self, request: Recorded) -> Reply:
        """RFC 7009: a refresh token it knows is revoked; anything else is ``invalid_token`` (§2.2)."""
        token = request.form.get("token", "")
        self.revoked.append(token)
        if self.refresh_tokens.pop(token, None) is None:
            return Reply(status=400, body={"error": "invalid_token"})
        return Reply(status=200, body={})


@pytest.fixture
async def regional() -> AsyncIterator[RegionalUpstream]:
    async with RecordingUpstream(host="127.0.0.1", hosts=REGIONS) as server:
        upstream = RegionalUpstream(server)
        server.answer("/authorize", upstream.authorize)
        server.answer("/token", upstream.token)
        server.answer("/revoke", upstream.revoke)
        yield upstream


def regional_mapping(upstream: RegionalUpstream, *, state_param: bool = False, keep: bool = True, revoke: bool = False) -> str:
    token_url = f"http://{{accounts_server}}:{upstream.port}/token" if keep else f"http://{REGIONS[1]}:{upstream.port}/token"
    return (
        ALEXA_PLATFORM_YAML
        + (
            "callback:\n"
            "  keep:\n"
            "    accounts_server: {pattern: '127\\.0\\.0\\.[23]', allow_private: true}\n"
            if keep
            else ""
        )
        + "upstream:\n"
        "  client_id: up\n"
        "  client_secret: ${UPSTREAM_SECRET}\n"
        f"  authorize: {{url: 'http://127.0.0.1:{upstream.port}/authorize'}}\n"
        "  token:\n"
        f"    url: '{token_url}'\n"
        "    client_auth: body\n"
        + ("    params: {add: {state: '{state}'}}\n" if state_param else "")
        + (f"  revoke: {{url: 'http://127.0.0.1:{upstream.port}/revoke', client_auth: body}}\n" if revoke else "")
    )


async def start(
    tmp_path: Path, mapping: str, *, keys: list[str], link_keys: list[str], more: str = "", others: dict[str, str] | None = None
) -> Gateway:
    sock = bound_socket()
    tmp_path.mkdir(parents=True, exist_ok=True)
    more += f"link_keys: [{', '.join(link_keys)}]\n" if link_keys else ""
    path, env = write_gateway_files(tmp_path, {"regional": mapping, **(others or {})}, port=port_of(sock), keys=keys, more=more)
    config = load_config(path, env=env)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    return Gateway(await start_site(runner, sock=sock), config, runner)


async def link(gateway: Gateway) -> dict[str, str]:
    """The browser leg by hand (redirects followed one by one); what Alexa's redirect carries."""
    query = {"client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "alexa-1", "response_type": "code"}
    url = f"{gateway.endpoint('authorize', 'regional')}?{urlencode(query)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        while not url.startswith(ALEXA_REDIRECT):
            async with browser.get(url, allow_redirects=False) as response:
                assert response.status == 302, await response.text()
                url = response.headers["Location"]
    return query_of(url)


async def token(gateway: Gateway, form: dict[str, str], *, provider: str = "regional", endpoint: str = "token") -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as platform:
        async with platform.post(
            gateway.endpoint(endpoint, provider), data=form, headers={"Authorization": PLATFORM_BASIC}
        ) as response:
            return response.status, (await response.json() if response.content_length else {})


async def redeem(gateway: Gateway, code: str) -> tuple[int, dict[str, str]]:
    return await token(gateway, {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT})


async def refresh(gateway: Gateway, refresh_token: str, *, provider: str = "regional") -> tuple[int, dict[str, str]]:
    return await token(gateway, {"grant_type": "refresh_token", "refresh_token": refresh_token}, provider=provider)


async def revoke(gateway: Gateway, token_: str) -> tuple[int, dict[str, str]]:
    return await token(gateway, {"token": token_}, endpoint="revoke")


async def test_the_authorization_time_state_reaches_the_token_request(tmp_path: Path, regional: RegionalUpstream) -> None:
    regional.require_state = True
    keys = [generate_key()]
    without = await start(tmp_path / "a", regional_mapping(regional), keys=keys, link_keys=[])
    try:
        status, body = await redeem(without, (await link(without))["code"])
        assert (status, body["error"]) == (502, "server_error"), body  # the upstream refused the gateway's request
    finally:
        await without.runner.cleanup()
    with_state = await start(tmp_path / "b", regional_mapping(regional, state_param=True), keys=keys, link_keys=[])
    try:
        status, body = await redeem(with_state, (await link(with_state))["code"])
        assert status == 200, body
        host, form = regional.calls[-1]
        assert host == REGIONS[1] and form["state"]  # the nonce, as the upstream saw it at /authorize
    finally:
        await with_state.runner.cleanup()


async def test_a_regional_link_refreshes_at_its_region_across_two_key_rotations(tmp_path: Path, regional: RegionalUpstream) -> None:
    keys, link_keys = [generate_key()], [generate_key()]
    gateway = await start(tmp_path / "0", regional_mapping(regional), keys=keys, link_keys=link_keys)
    try:
        regional.region_of_next_user = REGIONS[0]
        first = await link(gateway)
        regional.region_of_next_user = REGIONS[1]
        second = await link(gateway)
        status_1, body_1 = await redeem(gateway, first["code"])
        status_2, body_2 = await redeem(gateway, second["code"])
        assert (status_1, status_2) == (200, 200), (body_1, body_2)
        assert [host for host, _ in regional.calls] == [REGIONS[0], REGIONS[1]]
        # The platform holds an envelope, not the upstream's refresh token.
        assert body_1["refresh_token"] not in regional.refresh_tokens
    finally:
        await gateway.runner.cleanup()

    tokens = {REGIONS[0]: body_1["refresh_token"], REGIONS[1]: body_2["refresh_token"]}
    for rotation in (1, 2):
        # Routine rotation: a new key in front of `keys`, the oldest dropped; link_keys grows.
        keys = [generate_key(), keys[0]]
        link_keys = [generate_key(), *link_keys]
        gateway = await start(tmp_path / str(rotation), regional_mapping(regional), keys=keys, link_keys=link_keys)
        try:
            for region in REGIONS:
                before = len(regional.calls)
                status, body = await refresh(gateway, tokens[region])
                assert status == 200, (rotation, region, body)
                assert regional.calls[before][0] == region
                tokens[region] = body["refresh_token"]
        finally:
            await gateway.runner.cleanup()
    # The newest envelope opens with the newest link key alone: it was re-sealed under it.
    assert open_refresh(link_sealer((link_keys[0],), ()), tokens[REGIONS[0]])[0] in regional.refresh_tokens


async def test_a_callback_value_off_its_pattern_is_refused_with_the_error_redirect(
    tmp_path: Path, regional: RegionalUpstream
) -> None:
    regional.region_of_next_user = "127.0.0.1"  # not a region the pattern allows: the gateway's own host
    gateway = await start(tmp_path, regional_mapping(regional), keys=[generate_key()], link_keys=[])
    try:
        answer = await link(gateway)
        assert answer["error"] == "server_error" and "accounts_server" in answer["error_description"]
        assert answer["state"] == "alexa-1" and "code" not in answer
        assert regional.calls == []
    finally:
        await gateway.runner.cleanup()


async def test_bad_envelopes_are_invalid_grant_without_an_upstream_call(tmp_path: Path, regional: RegionalUpstream) -> None:
    keys, link_keys = [generate_key()], [generate_key()]
    gateway = await start(tmp_path, regional_mapping(regional), keys=keys, link_keys=link_keys)
    try:
        status, body = await redeem(gateway, (await link(gateway))["code"])
        assert status == 200, body
        good = body["refresh_token"]
        calls = len(regional.calls)
        tampered = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
        unknown = seal_refresh(link_sealer((generate_key(),), ()), "rt-x", {"accounts_server": REGIONS[0]})
        plain = next(iter(regional.refresh_tokens))  # the upstream's own token, not an envelope
        for bad in (tampered, good[: len(good) // 2], unknown, plain):
            status, body = await refresh(gateway, bad)
            assert (status, body["error"]) == (400, "invalid_grant"), body
        assert len(regional.calls) == calls
        assert (await refresh(gateway, good))[0] == 200
    finally:
        await gateway.runner.cleanup()


async def test_a_mapping_without_context_passes_refresh_tokens_through(tmp_path: Path, regional: RegionalUpstream) -> None:
    gateway = await start(tmp_path, regional_mapping(regional, keep=False), keys=[generate_key()], link_keys=[])
    try:
        status, body = await redeem(gateway, (await link(gateway))["code"])
        assert status == 200, body
        assert body["refresh_token"] in regional.refresh_tokens  # the upstream's own, unchanged
    finally:
        await gateway.runner.cleanup()


# -- refresh envelopes: their size, their binding, their text, their revocation --------------------


async def test_an_envelope_around_an_8_kib_upstream_refresh_token_is_accepted_where_it_is_used(
    tmp_path: Path, regional: RegionalUpstream
) -> None:
    regional.refresh_length = 8 * 1024  # a long JWT
    gateway = await start(tmp_path, regional_mapping(regional, revoke=True), keys=[generate_key()], link_keys=[])
    try:
        status, body = await redeem(gateway, (await link(gateway))["code"])
        assert status == 200, body
        envelope = body["refresh_token"]
        assert len(envelope) > 8 * 1024
        for _ in range(2):  # the link lives past its first refresh, and its second
            status, body = await refresh(gateway, envelope)
            assert status == 200, body
            envelope = body["refresh_token"]
        (current,) = regional.refresh_tokens
        assert (await revoke(gateway, envelope))[0] == 200
        assert regional.revoked == [current] and len(current) == 8 * 1024
    finally:
        await gateway.runner.cleanup()


async def test_an_upstream_refresh_token_too_long_to_carry_fails_the_link_at_once(tmp_path: Path, regional: RegionalUpstream) -> None:
    regional.refresh_length = 16 * 1024
    gateway = await start(tmp_path, regional_mapping(regional), keys=[generate_key()], link_keys=[])
    try:
        status, body = await redeem(gateway, (await link(gateway))["code"])
        assert (status, body["error"]) == (502, "server_error"), body
        assert "too long" in body["error_description"]
    finally:
        await gateway.runner.cleanup()


async def test_an_envelope_opens_only_at_the_provider_that_sealed_it(tmp_path: Path, regional: RegionalUpstream) -> None:
    elsewhere = regional_mapping(regional, revoke=True)
    gateway = await start(tmp_path, regional_mapping(regional), keys=[generate_key()], link_keys=[], others={"elsewhere": elsewhere})
    try:
        status, body = await redeem(gateway, (await link(gateway))["code"])
        assert status == 200, body
        calls = len(regional.calls)
        status, refused = await refresh(gateway, body["refresh_token"], provider="elsewhere")
        assert (status, refused.get("error")) == (400, "invalid_grant"), refused
        assert len(regional.calls) == calls, "provider A's upstream token went to provider B's upstream"
        status, refused = await token(gateway, {"token": body["refresh_token"]}, provider="elsewhere", endpoint="revoke")
        assert (status, refused.get("error")) == (400, "invalid_grant"), refused
        assert regional.revoked == [], "provider B's revocation endpoint was sent provider A's token"
        assert (await refresh(gateway, body["refresh_token"]))[0] == 200  # at its own provider it works
    finally:
        await gateway.runner.cleanup()


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_padded_envelope_shares_the_grace_window_of_the_envelope(
    tmp_path: Path, regional: RegionalUpstream, store: str, request: pytest.FixtureRequest
) -> None:
    more = ""
    if store == "redis":
        more = f"store: {{url: {request.getfixturevalue('link_redis').url}}}\n"
    gateway = await start(tmp_path, regional_mapping(regional), keys=[generate_key()], link_keys=[], more=more)
    try:
        status, body = await redeem(gateway, (await link(gateway))["code"])
        assert status == 200, body
        envelope = body["refresh_token"]
        status, answer = await refresh(gateway, envelope)
        assert status == 200, answer
        calls = len(regional.calls)
        status, again = await refresh(gateway, envelope + "=")  # opens like the original (Fernet)
        assert (status, again) == (200, answer), "the padded envelope reached the upstream with a rotated token"
        assert len(regional.calls) == calls
    finally:
        await gateway.runner.cleanup()


async def test_revoking_an_envelope_revokes_the_upstream_token_inside_and_ends_its_grace(
    tmp_path: Path, regional: RegionalUpstream
) -> None:
    gateway = await start(tmp_path, regional_mapping(regional, revoke=True), keys=[generate_key()], link_keys=[])
    try:
        status, body = await redeem(gateway, (await link(gateway))["code"])
        assert status == 200, body
        first = body["refresh_token"]
        status, body = await refresh(gateway, first)  # remembered for the grace window
        assert status == 200, body
        latest = body["refresh_token"]
        (upstream_latest,) = regional.refresh_tokens

        assert (await revoke(gateway, latest))[0] == 200
        assert regional.revoked == [upstream_latest], "the upstream was sent the envelope, which it does not know"
        assert not regional.refresh_tokens, "the grant lives on"
        status, refused = await refresh(gateway, latest)
        assert (status, refused["error"]) == (400, "invalid_grant"), refused

        # The first envelope's remembered answer (with the now revoked refresh token) leaves the window.
        assert (await revoke(gateway, first))[0] == 200  # the upstream: invalid_token, i.e. gone (RFC 7009 §2.2)
        calls = len(regional.calls)
        status, refused = await refresh(gateway, first)
        assert (status, refused["error"]) == (400, "invalid_grant"), refused
        assert len(regional.calls) == calls
    finally:
        await gateway.runner.cleanup()


# -- a tenant host's addresses: checked in the lookup the connection uses --------------------------

#: Where a rebinding name points when it turns private: a listener that only counts connections.
PRIVATE = "127.0.0.7"
PUBLIC = "93.184.215.14"  # never connected to: only ever the answer to a lookup nobody connects with


@dataclass
class RebindingName:
    """The system resolver (``loop.getaddrinfo``) for ``*.rebind.test``, scripted, in place of a DNS
    server whose answers change: ``answers`` are consumed in order, the last one repeats.

    ``checked``: the answer to a lookup that is *not* one aiohttp connects with (aiohttp's resolver
    asks with ``AI_ADDRCONFIG``; a separate check asks without), so a check beside the connection
    can be shown a public address while the connection is shown a private one.
    """

    answers: list[str | None]  # an address, or None for a failed lookup (SERVFAIL)
    checked: str | None = None
    lookups: list[tuple[str, int]] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def getaddrinfo(host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
            if not str(host).endswith(".rebind.test"):
                return await real(host, port, family=family, type=type, proto=proto, flags=flags)
            self.lookups.append((str(host), flags))
            if self.checked is not None and not flags & socket.AI_ADDRCONFIG:
                answer: str | None = self.checked
            else:
                answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if answer is None:
                raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answer, int(port)))]

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


@pytest.fixture
async def private_listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP listener on 127.0.0.7 that records each connection and closes it."""
    accepted: list[str] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(str(writer.get_extra_info("peername")))
        writer.close()

    sock = bound_socket(PRIVATE)
    server = await asyncio.start_server(count, sock=sock)
    try:
        yield port_of(sock), accepted
    finally:
        server.close()
        await server.wait_closed()


def rebinding_mapping(upstream: RegionalUpstream, port: int) -> str:
    """The token request goes to the host the callback names; the name must resolve publicly."""
    return (
        ALEXA_PLATFORM_YAML
        + "callback:\n  keep:\n    accounts_server: {pattern: '[a-z]+\\.rebind\\.test'}\n"
        + "upstream:\n  client_id: up\n  client_secret: ${UPSTREAM_SECRET}\n"
        + f"  authorize: {{url: 'http://127.0.0.1:{upstream.port}/authorize'}}\n"
        + f"  token: {{url: 'https://{{accounts_server}}:{port}/token', client_auth: body}}\n"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (RebindingName([None, PRIVATE]), [(503, "temporarily_unavailable")] + [(400, "invalid_grant")] * 2),  # SERVFAIL, then private
        (RebindingName([PRIVATE], checked=PUBLIC), [(400, "invalid_grant")] * 3),  # public to a check, private to the client
        (RebindingName([PRIVATE]), [(400, "invalid_grant")] * 3),
    ],
    ids=["servfail-then-private", "public-then-private", "private"],
)
async def test_a_tenant_host_is_connected_to_only_at_checked_public_addresses(
    tmp_path: Path,
    regional: RegionalUpstream,
    private_listener: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    name: RebindingName,
    expected: list[tuple[int, str]],
) -> None:
    """A lookup that fails fails the call (503, the grant may be fine); a private answer is the
    link's fault (400); and whatever a lookup answers, nothing connects to 127.0.0.7."""
    port, accepted = private_listener
    name.install(monkeypatch)
    regional.region_of_next_user = "acme.rebind.test"
    gateway = await start(tmp_path, rebinding_mapping(regional, port), keys=[generate_key()], link_keys=[])
    try:
        for want in expected:  # each call looks the name up anew: no answer is cached
            status, body = await redeem(gateway, (await link(gateway))["code"])
            assert (status, body["error"]) == want, body
    finally:
        await gateway.runner.cleanup()
    assert accepted == [], f"the gateway connected to {PRIVATE}"
    assert len(name.lookups) == 3, f"one lookup per call, the one the connection uses: {name.lookups}"
def origin_mapping(upstream: RegionalUpstream, *, table: bool = False) -> str:
    """Zoho's shapes: the token URL starts with a kept whole origin, or its host comes from a table."""
    keep = (
        "    location: {hosts: {two: 127.0.0.2, three: 127.0.0.3}, allow_private: true}\n"
        if table
        else f"    accounts-server: {{placeholder: accounts_server, url: true, pattern: 'http://127\\.0\\.0\\.[23]:{upstream.port}', allow_private: true}}\n"
    )
    token_url = f"http://{{location}}:{upstream.port}/token" if table else "{accounts_server}/token"
    return (
        ALEXA_PLATFORM_YAML
        + "callback:\n  keep:\n" + keep
        + "upstream:\n"
        "  client_id: up\n"
        "  client_secret: ${UPSTREAM_SECRET}\n"
        f"  authorize: {{url: 'http://127.0.0.1:{upstream.port}/authorize'}}\n"
        "  token:\n"
        f"    url: '{token_url}'\n"
        "    client_auth: body\n"
    )


@pytest.mark.parametrize("table", [False, True], ids=["whole-origin", "host-table"])
async def test_a_kept_origin_or_table_host_carries_the_link_to_its_region(
    tmp_path: Path, regional: RegionalUpstream, table: bool
) -> None:
    gateway = await start(tmp_path, origin_mapping(regional, table=table), keys=[generate_key()], link_keys=[])
    try:
        for region in REGIONS:
            regional.region_of_next_user = region
            status, body = await redeem(gateway, (await link(gateway))["code"])
            assert status == 200, body
            assert regional.calls[-1][0] == region
            status, body = await refresh(gateway, body["refresh_token"])
            assert status == 200, body
            assert regional.calls[-1][0] == region  # the refresh goes where the link lives
    finally:
        await gateway.runner.cleanup()


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.4:{port}", "http://127.0.0.2:{port}/evil", "http://user@127.0.0.2:{port}", "http://127.0.0.2:1"],
    ids=["other-host", "with-a-path", "with-userinfo", "other-port"],
)
async def test_a_kept_origin_outside_its_pattern_is_refused_at_the_callback(
    tmp_path: Path, regional: RegionalUpstream, origin: str
) -> None:
    gateway = await start(tmp_path, origin_mapping(regional), keys=[generate_key()], link_keys=[])
    try:
        regional.origin_of_next_user = origin.format(port=regional.port)
        back = await link(gateway)
        assert back["error"] == "server_error" and "code" not in back, back
        assert regional.calls == []  # no token request went anywhere
    finally:
        await gateway.runner.cleanup()
