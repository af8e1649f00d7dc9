"""What an outside attack found: each defect, sent again over a real socket.

Where aiohttp's client would refuse or normalise the input (a bad request line, a bare header,
a body that stops halfway), the bytes are written with asyncio streams.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from support.harness import (
    ALEXA_PLATFORM_YAML,
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    Gateway,
    mapping_yaml,
    query_of,
    start_gateway,
    write_gateway_files,
)
from support.processes import start_gateway_process
from support.sockets import bound_socket, start_site, unused_port
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault, Grant, RecordingUpstream

from gateway.config.settings import load_config
from gateway.observe.logs import TEXT_FORMAT, TextFormatter
from gateway.web.app import UPSTREAM_CONNECTIONS_PER_HOST, create_app
from gateway.web.handlers import MAX_PARAM_LENGTH
from gateway.web.runner import DRAIN, GatewayRunner

Maker = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Maker]:
    """A gateway whose providers (name → recording upstream) each have their own mapping."""
    started: list[Gateway] = []

    async def start(providers: dict[str, RecordingUpstream], token_extra: str = "") -> Gateway:
        mappings = {
            name: mapping_yaml(upstream, upstream_client_id=DEFAULT_CLIENT_ID, token_extra=token_extra)
            for name, upstream in providers.items()
        }
        gateway = await start_gateway(tmp_path, mappings, upstream_secret=DEFAULT_CLIENT_SECRET)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.runner.cleanup()


async def begin_flow(browser: aiohttp.ClientSession, gateway: Gateway, provider: str, **params: str) -> str:
    """Start a flow at /authorize; return the nonce the gateway sent the upstream as ``state``."""
    async with browser.get(gateway.authorize_url(provider, **params), allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return query_of(response.headers["Location"])["state"]


async def raw(port: int, data: bytes, *, read: bool = True) -> bytes:
    """Send ``data`` as it is and read until the gateway closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10) if read else b""
    writer.close()
    return answer


def port_of(gateway: Gateway) -> int:
    return int(gateway.url.rsplit(":", 1)[1])


# -- 1. whatever /callback issues, /token redeems ------------------------------------------------


@pytest.mark.parametrize("pkce", [False, True], ids=["plain", "pkce"])
async def test_callback_issues_only_codes_token_redeems(
    make: Maker, fake: RecordingUpstream, browser: aiohttp.ClientSession, platform: aiohttp.ClientSession, pkce: bool
) -> None:
    gateway = await make({"fake": fake})
    verifier = "v" * 64
    params = {}
    if pkce:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {"code_challenge": challenge, "code_challenge_method": "S256"}

    async def callback(length: int) -> dict[str, str]:
        nonce = await begin_flow(browser, gateway, "fake", **params)
        code = f"{length:05d}" + "c" * (length - 5)
        fake.grants[code] = Grant(code, DEFAULT_CLIENT_ID, f"{gateway.url}/fake/callback", "")
        async with browser.get(gateway.endpoint("callback", "fake"), params={"code": code, "state": nonce}, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            location = response.headers["Location"]
        assert location.startswith(ALEXA_REDIRECT + "?"), location
        return query_of(location)

    # The longest upstream code the callback accepts (binary search: acceptance is monotone).
    low, high = 1000, MAX_PARAM_LENGTH
    assert "code" in await callback(low)
    while low < high:
        middle = (low + high + 1) // 2
        if "code" in await callback(middle):
            low = middle
        else:
            high = middle - 1
    assert low < MAX_PARAM_LENGTH  # sealing lengthens a code: the cap is lower than /token's
    refused = await callback(low + 1)
    assert refused == {"error": "server_error", "error_description": "upstream code is too long", "state": "alexa-state-123"}

    longest = await callback(low)
    assert len(longest["code"]) <= MAX_PARAM_LENGTH
    form = {"grant_type": "authorization_code", "code": longest["code"], "redirect_uri": ALEXA_REDIRECT}
    if pkce:
        form["code_verifier"] = verifier
    async with platform.post(gateway.endpoint("token", "fake"), data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
        body = await response.json()
        assert response.status == 200, body
    assert body["access_token"]


# -- 7. another provider's callback leaves the flow alone ---------------------------------------


async def test_a_foreign_callback_does_not_spend_the_flow(make: Maker, fake: RecordingUpstream, browser: aiohttp.ClientSession) -> None:
    gateway = await make({"fake": fake, "other": fake})
    nonce = await begin_flow(browser, gateway, "fake")
    async with browser.get(gateway.endpoint("callback", "other"), params={"code": "x", "state": nonce}, allow_redirects=False) as response:
        assert response.status == 400
    async with browser.get(gateway.endpoint("callback", "fake"), params={"code": "x", "state": nonce}, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        assert "code" in query_of(response.headers["Location"])


# -- 5. the text log: one record, one line -------------------------------------------------------


async def test_text_log_escapes_control_characters(make: Maker, fake: RecordingUpstream) -> None:
    gateway = await make({"fake": fake})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter(TEXT_FORMAT))
    logger = logging.getLogger("gateway.request")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        forged = "/x%0A2026-01-01%2000:00:00,000%20INFO%20gateway.request:%20GET%20/healthz%20200%0D%00%1B[31m%E2%80%A8"
        answer = await raw(port_of(gateway), f"GET {forged} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 404")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    text = stream.getvalue()
    assert text.count("\n") == 1, text
    assert "\x00" not in text and "\x1b" not in text and "\r" not in text and "\u2028" not in text
    assert "\\n2026-01-01" in text and "\\x1b[31m" in text


# -- 3. (the fault matrix has the redirect-with-a-token cells) -----------------------------------

# -- 6. one hanging upstream does not starve another ---------------------------------------------


async def test_a_hanging_upstream_does_not_starve_a_healthy_one(make: Maker) -> None:
    async with RecordingUpstream(host="127.0.0.2") as hanging, RecordingUpstream(host="127.0.0.3") as healthy:
        hanging.fault = Fault(hang=True)
        gateway = await make({"hanging": hanging, "healthy": healthy}, token_extra="timeout: 20\n")
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as client:

            async def refresh(provider: str, token: str) -> int:
                async with client.post(
                    gateway.endpoint("token", provider),
                    data={"grant_type": "refresh_token", "refresh_token": token},
                    headers={"Authorization": PLATFORM_BASIC},
                ) as response:
                    await response.read()
                    return response.status

            waiting = [asyncio.create_task(refresh("hanging", f"rt{n}")) for n in range(300)]
            try:
                async with asyncio.timeout(10):
                    while len(hanging.token_requests) < UPSTREAM_CONNECTIONS_PER_HOST:
                        await asyncio.sleep(0.02)
                await asyncio.sleep(0.2)  # the rest queue behind the per-host limit
                assert len(hanging.token_requests) == UPSTREAM_CONNECTIONS_PER_HOST
                statuses = await asyncio.wait_for(
                    asyncio.gather(*(refresh("healthy", healthy.issue_refresh_token()) for _ in range(20))), 5
                )
                assert statuses == [200] * 20
                assert not any(task.done() for task in waiting)  # the hanging ones are all still waiting
            finally:
                for task in waiting:
                    task.cancel()
                await asyncio.gather(*waiting, return_exceptions=True)


# -- 10. demo forms answer 400 to bodies they can't read -----------------------------------------


@pytest.fixture
async def demo_gateway(tmp_path: Path) -> AsyncIterator[int]:
    sock = bound_socket()
    port = int(sock.getsockname()[1])
    path, env = write_gateway_files(tmp_path, {}, port=port, more="demo: true\n")
    runner = web.AppRunner(create_app(load_config(path, env=env)), access_log=None)
    await runner.setup()
    await start_site(runner, sock=sock)
    yield port
    await runner.cleanup()


BAD_FORMS = {
    "not-utf8": ("application/x-www-form-urlencoded", b"username=\xff\xfe&request=x"),
    "utf-16": ("application/x-www-form-urlencoded; charset=utf-16", b"username=ab"),  # odd length: not UTF-16
    "unknown-charset": ("application/x-www-form-urlencoded; charset=no-such-charset", b"username=a"),
    "malformed-multipart": ("multipart/form-data; boundary=XYZ", b"--XYZ\r\nContent-Disposition: form-data\r\n\r\nxx"),
    "multipart-no-boundary": ("multipart/form-data", b"--XYZ\r\n\r\n"),
    "multipart-bad-charset": (
        "multipart/form-data; boundary=XYZ",
        b'--XYZ\r\nContent-Disposition: form-data; name="username"\r\nContent-Type: text/plain; charset=nope\r\n\r\na\r\n--XYZ--\r\n',
    ),
}


@pytest.mark.parametrize("path", ["/_demo/oauth/login", "/_demo/oauth/consent", "/_demo/platform/refresh"])
@pytest.mark.parametrize("form", list(BAD_FORMS), ids=list(BAD_FORMS))
async def test_demo_forms_refuse_unreadable_bodies(demo_gateway: int, path: str, form: str) -> None:
    content_type, body = BAD_FORMS[form]
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    answer = await raw(demo_gateway, request)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]



# -- 2, 4, 8, 9: the server around the app (gateway.web.runner, as `gateway serve` runs it) ----------


async def serve(tmp_path: Path, fake: RecordingUpstream, more: str = "") -> tuple[int, web.Application, GatewayRunner]:
    sock = bound_socket()
    port = int(sock.getsockname()[1])
    mapping = mapping_yaml(fake, upstream_client_id=DEFAULT_CLIENT_ID)
    path, env = write_gateway_files(tmp_path, {"fake": mapping}, port=port, upstream_secret=DEFAULT_CLIENT_SECRET, more=more)
    config = load_config(path, env=env)
    app = create_app(config)
    runner = GatewayRunner(app, config.connections, access_log=None, shutdown_timeout=5)
    await runner.setup()
    await start_site(runner, sock=sock)
    return port, app, runner


TOKEN_HEAD = "POST /fake/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n"


async def test_slow_body_and_slow_headers_meet_a_deadline(tmp_path: Path, fake: RecordingUpstream) -> None:
    port, _, runner = await serve(tmp_path, fake, "connections: {body_timeout: 0.3, header_timeout: 0.3}\n")
    try:
        slow_body = raw(port, TOKEN_HEAD.format(100).encode() + b"grant_type=")  # 89 bytes never come
        slow_headers = raw(port, b"POST /fake/token HTTP/1.1\r\nHost: x\r\n")  # nor the end of the headers
        body_answer, header_answer = await asyncio.wait_for(asyncio.gather(slow_body, slow_headers), 5)
        assert body_answer.startswith(b"HTTP/1.1 408"), body_answer
        assert header_answer.startswith(b"HTTP/1.1 408"), header_answer
    finally:
        await runner.cleanup()


async def test_slow_headers_are_one_quiet_line_not_a_traceback_each(
    tmp_path: Path, fake: RecordingUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """Each slow connection used to log an ERROR traceback (the transport closed twice), unbounded."""
    port, _, runner = await serve(tmp_path, fake, "connections: {header_timeout: 0.2}\n")
    try:
        with caplog.at_level(logging.DEBUG):
            slow = [raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n") for _ in range(8)]
            answers = await asyncio.wait_for(asyncio.gather(*slow), 5)
            await asyncio.sleep(0.05)  # a callback failing after the close would log now
    finally:
        await runner.cleanup()
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info], [
        record.getMessage() for record in caplog.records
    ]
    slow_lines = [record for record in caplog.records if "request headers not complete" in record.getMessage()]
    assert len(slow_lines) <= 1, "one line a second at most, not one per connection"


async def test_connections_over_the_cap_get_503_and_close(tmp_path: Path, fake: RecordingUpstream) -> None:
    port, _, runner = await serve(tmp_path, fake, "connections: {max: 3}\n")
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        await asyncio.sleep(0.05)
        answer = await raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503") and b"Connection: close" in answer, answer
    finally:
        for _, writer in held:
            writer.close()
        await runner.cleanup()
    assert answer


SECRETS = ("sekret-code-123", "Basic c2VrcmV0", "sid=sekret-cookie")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /fake/callback?code=sekret-code-123&state=s HTTP/1.1 junk\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization : Basic c2VrcmV0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: sid=sekret-cookie\x01\r\n\r\n",
        b"GET /fake/callback?code=sekret-code-123\x00 HTTP/1.1\r\n\r\n",
    ],
    ids=["bad-request-line", "bad-header-name", "control-in-cookie", "nul-in-target"],
)
async def test_malformed_requests_log_one_redacted_line(
    tmp_path: Path, fake: RecordingUpstream, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    port, _, runner = await serve(tmp_path, fake)
    try:
        with caplog.at_level(logging.DEBUG):
            answer = await raw(port, request_bytes)
    finally:
        await runner.cleanup()
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer
    assert not any(secret.encode() in answer for secret in SECRETS), answer
    assert len(answer.split(b"\r\n\r\n", 1)[1]) < 64
    noisy = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(noisy) == 1, [record.getMessage() for record in noisy]
    for record in caplog.records:
        text = record.getMessage() + str(record.exc_info or "") + str(record.exc_text or "")
        assert not any(secret in text for secret in SECRETS), text
        assert record.exc_info is None


async def test_a_client_leaving_mid_body_is_a_disconnect(tmp_path: Path, fake: RecordingUpstream, caplog: pytest.LogCaptureFixture) -> None:
    port, _, runner = await serve(tmp_path, fake, "connections: {body_timeout: 5}\n")
    try:
        with caplog.at_level(logging.INFO):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(TOKEN_HEAD.format(1000).encode() + b"grant_type=refresh_token")
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.transport.abort()  # gone, halfway through the body
            async with asyncio.timeout(5):  # until the gateway has logged the request (then it is done with it)
                while not [record for record in caplog.records if record.name == "gateway.request"]:
                    await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    lines = [record for record in caplog.records if record.name == "gateway.request"]
    assert len(lines) == 1
    assert getattr(lines[0], "outcome", "") == "client_disconnect"
    assert getattr(lines[0], "status", 0) != 500


async def test_sigterm_drain_closes_connections_and_answers_503_past_the_grace(tmp_path: Path) -> None:
    async with RecordingUpstream() as fake:
        fake.fault = Fault(delay=3)  # longer than the grace
        port, app, runner = await serve(tmp_path, fake)
        drain = app[DRAIN]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b"grant_type=refresh_token&refresh_token=rt"
        writer.write(TOKEN_HEAD.format(len(body)).encode().replace(b"\r\n\r\n", f"\r\nAuthorization: {PLATFORM_BASIC}\r\n\r\n".encode()) + body)
        await writer.drain()
        async with asyncio.timeout(5):
            while not fake.token_requests:
                await asyncio.sleep(0.02)
        drain.closing = True  # what SIGTERM does in gateway.web.server, then the grace runs out
        drain.expired.set()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await runner.cleanup()
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert b"Connection: close" in answer
    assert b"temporarily_unavailable" in answer


async def _keep_alive_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One answer read off a keep-alive connection: (head, body), by its Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    return head, await reader.readexactly(length)


async def test_while_draining_aiohttps_own_answers_close_too(tmp_path: Path, fake: RecordingUpstream) -> None:
    """A 404 or 405 that aiohttp raises (an exception that is its answer) left the drain's
    ``Connection: close`` behind; on a keep-alive connection, during the drain, it closes too."""
    port, app, runner = await serve(tmp_path, fake)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        app[DRAIN].closing = True  # what SIGTERM does in gateway.web.server
        writer.write(b"GET /no/such/path/here HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await asyncio.wait_for(_keep_alive_answer(reader), 5)
        writer.close()
    finally:
        await runner.cleanup()
    assert head.startswith(b"HTTP/1.1 404") and b"Connection: close" in head, head


async def test_after_sigterm_every_keep_alive_answer_closes_on_both_listeners(tmp_path: Path) -> None:
    """`gateway serve` with an ops listener: SIGTERM while a token request is in flight. Each
    keep-alive connection, public and ops (a scraper's, a probe's), gets its answer with
    ``Connection: close``, so no client sends its next request into a connection being closed."""
    async with RecordingUpstream() as fake:
        fake.fault = Fault(delay=1.5)
        sock = bound_socket()
        port = int(sock.getsockname()[1])
        ops = unused_port()
        mapping = mapping_yaml(fake, upstream_client_id=DEFAULT_CLIENT_ID)
        path, env = write_gateway_files(
            tmp_path, {"fake": mapping}, port=port, upstream_secret=DEFAULT_CLIENT_SECRET,
            more=f"shutdown_grace: 5\nmetrics: {{host: 127.0.0.1, port: {ops}}}\n",
        )
        gateway = await start_gateway_process(path, sock=sock, env=env)
        try:
            public = await asyncio.open_connection("127.0.0.1", port)
            scraper = await asyncio.open_connection("127.0.0.1", ops)
            get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            for reader, writer in (public, scraper):  # each connection has served one answer, kept alive
                writer.write(get)
                head, _ = await asyncio.wait_for(_keep_alive_answer(reader), 5)
                assert b"Connection: close" not in head, head
            body = f"grant_type=refresh_token&refresh_token={fake.issue_refresh_token()}".encode()
            token_head = TOKEN_HEAD.format(len(body)).replace("\r\n\r\n", f"\r\nAuthorization: {PLATFORM_BASIC}\r\n\r\n")
            public[1].write(token_head.encode() + body)
            async with asyncio.timeout(5):
                while not fake.token_requests:
                    await asyncio.sleep(0.02)
            gateway.signal(signal.SIGTERM)
            await asyncio.sleep(0.3)  # draining now: the token request is still at the upstream
            scraper[1].write(get)
            ops_head, _ = await asyncio.wait_for(_keep_alive_answer(scraper[0]), 5)
            token_answer, _ = await asyncio.wait_for(_keep_alive_answer(public[0]), 10)
            for _, writer in (public, scraper):
                writer.close()
            assert await gateway.wait() == 0
        finally:
            await gateway.stop()
    assert token_answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in token_answer, token_answer
    assert ops_head.startswith(b"HTTP/1.1 200") and b"Connection: close" in ops_head, ops_head


@pytest.mark.parametrize("grace", [5.0, 0.3], ids=["in-grace", "past-grace"])
async def test_sigterm_answers_in_flight_requests_with_connection_close(tmp_path: Path, grace: float) -> None:
    """`gateway serve` itself: SIGTERM with a 1.5 s upstream call in flight."""
    async with RecordingUpstream() as fake:
        fake.fault = Fault(delay=1.5)
        sock = bound_socket()
        port = int(sock.getsockname()[1])
        mapping = mapping_yaml(fake, upstream_client_id=DEFAULT_CLIENT_ID)
        path, env = write_gateway_files(
            tmp_path, {"fake": mapping}, port=port, upstream_secret=DEFAULT_CLIENT_SECRET, more=f"shutdown_grace: {grace}\n"
        )
        gateway = await start_gateway_process(path, sock=sock, env=env)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = f"grant_type=refresh_token&refresh_token={fake.issue_refresh_token()}".encode()
            head = TOKEN_HEAD.format(len(body)).replace("\r\n\r\n", f"\r\nAuthorization: {PLATFORM_BASIC}\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
            async with asyncio.timeout(5):
                while not fake.token_requests:
                    await asyncio.sleep(0.02)
            gateway.signal(signal.SIGTERM)
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert await gateway.wait() == 0
        finally:
            await gateway.stop()
    head_bytes = answer.split(b"\r\n\r\n", 1)[0]
    assert b"Connection: close" in head_bytes, answer
    if grace > 1.5:
        assert answer.startswith(b"HTTP/1.1 200"), answer
    else:
        assert answer.startswith(b"HTTP/1.1 503") and b"temporarily_unavailable" in answer, answer


# -- values from the wire that reached the last-resort 500 -------------------------------------


class _FormFields(HTMLParser):
    """The tenant form's inputs and action, as a browser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "input" and named.get("name"):
            self.inputs[str(named["name"])] = named.get("value") or ""
        elif tag == "form":
            self.action = named.get("action") or ""


@pytest.mark.parametrize("value", ["2130706433:443", "2130706433", "0x7f000001", "127.1", "acme.example:443"])
async def test_a_tenant_value_that_reshapes_a_url_with_a_port_is_refused_by_the_form(tmp_path: Path, value: str) -> None:
    """Under ``https://{shop}:8443/…``, ``2130706433:443`` made a URL whose port can't be read (a 500);
    the legacy numeric IPv4 forms passed as DNS names."""
    mapping = (
        ALEXA_PLATFORM_YAML
        + "tenant: {name: shop, pattern: '[a-z0-9.:x-]+', label: Your shop}\n"
        "upstream:\n  client_id: up\n  client_secret: ${UPSTREAM_SECRET}\n"
        "  authorize: {url: 'https://{shop}:8443/authorize'}\n  token: {url: 'https://{shop}:8443/token'}\n"
    )
    gateway = await start_gateway(tmp_path, {"shop": mapping})
    try:
        url = gateway.authorize_url("shop")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(url, allow_redirects=False) as response:
                assert response.status == 200, await response.text()
                fields = _FormFields()
                fields.feed(await response.text())
            target = urlsplit(url)._replace(query=fields.action.removeprefix("?")).geturl()
            async with browser.post(target, data={**fields.inputs, "tenant": value}, allow_redirects=False) as response:
                page = await response.text()
        assert response.status == 400, page
        assert "can not be used" in page and "Location" not in response.headers
    finally:
        await gateway.runner.cleanup()


async def test_a_control_character_in_the_platforms_scope_is_invalid_scope(
    make: Maker, fake: RecordingUpstream, browser: aiohttp.ClientSession
) -> None:
    """A NUL in ``scope`` used to travel in the flow to a token header template (``{authorize_scope}``)
    and make the token request a 500; RFC 6749 §3.3 scope tokens are printable: ``invalid_scope``."""
    gateway = await make({"fake": fake}, token_extra="headers: {add: {X-Scope: '{authorize_scope}'}}")
    for scope in ("read\x00write", "read\r\nX-Evil: 1"):
        async with browser.get(gateway.authorize_url("fake", scope=scope), allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            location = response.headers["Location"]
        assert location.startswith(ALEXA_REDIRECT + "?"), location
        assert query_of(location)["error"] == "invalid_scope"
    assert fake.token_requests == []
