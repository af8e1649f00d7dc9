"""Robustness proof: an open-redirect corpus and property-based fuzzing of every endpoint.

Everything runs against the real gateway on 127.0.0.1 (``gateway.config.settings.load_config`` +
``create_app``, as ``gateway serve`` runs it), in front of the real oidc-provider upstream; where the
test must see or choose what the upstream token endpoint answers, the mappings point ``token.url``
at the recording upstream (:class:`support.upstream.RecordingUpstream`).

Invariants (each is asserted for every generated input):

* Open-redirect corpus (``tests/corpus/open_redirects.txt``): every hostile redirect URI gets an
  HTML page from ``/authorize`` — 4xx, ``text/html``, no ``Location`` — never a 500; and the
  legitimate URIs (Alexa's three regions, the ``/spa/`` form, the app link, Google's two hosts)
  *do* get a 302 to the upstream, so the test fails in both directions. Case variants of scheme
  and host are refused on purpose (exact matching, RFC 6749 §3.1.2.3 / RFC 9700 §2.1; see the
  corpus header).
* ``/authorize``: never 5xx; a redirect goes either to the upstream's authorize URL (and then
  the request had the right client and an allowed ``redirect_uri``) or to a prefix that the
  mapping's platform policy allows *and* that is the request's own ``redirect_uri`` (an
  RFC 6749 §4.1.2.1 error redirect) — never anywhere else; every other answer is HTML with
  ``Cache-Control: no-store``; a flow cookie stays under the 4096 bytes browsers keep.
* ``/callback``: never 5xx; a redirect only when ``state`` names a flow in the cookie that was
  sent (and belongs to the provider in the path), and only to that flow's redirect URI, which the
  policy allows; the sealed code it carries opens and binds client, redirect URI and provider;
  otherwise HTML with ``Cache-Control: no-store`` and no ``Location``.
* ``/token``: never 5xx except 502/503 after an upstream call was actually made; a code that the
  gateway did not issue (forged, altered, expired, sealed under another key or for another
  purpose, provider, client or redirect URI, PKCE mismatch) never reaches the upstream; always
  ``application/json`` with ``Cache-Control: no-store`` and ``Pragma: no-cache``; a 401 carries
  ``WWW-Authenticate`` exactly when the client tried header authentication (an ``Authorization``
  header, RFC 6749 §5.2); ``error`` is an RFC 6749 code; a 200 is a §5.1 answer.
* ``/healthz``, ``/readyz``, ``/metrics`` and unknown paths, any method: never 5xx.
* No request hangs: every request must be answered within :data:`HANG_SECONDS`.

Answers that aiohttp's HTTP parser gives before the gateway sees the request (a raw byte in the
request line, an unknown ``Content-Encoding``) carry no ``X-Request-Id``; for those only
"never 5xx" is asserted.

The bugs the fuzzers found are pinned by the regression tests at the end (minimal reproductions),
and their input classes stay in the fuzzers.

Running longer, locally::

    GATEWAY_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/e2e/test_fuzz.py -q -p no:warnings
    GATEWAY_FUZZ_RANDOM=1 ...        # a fresh random seed each run (CI is derandomized)

The examples are generated in a worker thread (Hypothesis is synchronous) and each request runs on
the test's event loop, where the gateway serves; one client session serves a whole test.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import dataclasses
import functools
import gzip
import hashlib
import json
import logging
import os
import socket
import time
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, quote_from_bytes, unquote_plus, urlencode

import aiohttp
import pytest
import yarl
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from support.harness import (
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    PLATFORM_SECRET,
    UPSTREAM_SECRET,
    VENDOR,
    Gateway,
    GatewayFactory,
    mapping_yaml,
    start_gateway,
)
from support.oauth import basic
from support.oidc_provider import OidcUpstream, login_and_consent
from support.upstream import RecordingUpstream, Reply

from gateway.config.models import TOKEN_ERRORS
from gateway.config.platforms import RedirectPolicy
from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.state import CODE_PURPOSE, Challenge, CodePayload, open_code, seal_code
from gateway.web.app import MAX_BODY_BYTES
from gateway.web.appkeys import CLAIMS, GRACE, STORE

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES") or 0)
FUZZ_RANDOM = os.environ.get("GATEWAY_FUZZ_RANDOM") == "1"
HANG_SECONDS = 10.0
CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "open_redirects.txt"


def fuzz_settings(default_examples: int) -> settings:
    """Deterministic in CI (derandomized, no example database); ``GATEWAY_FUZZ_EXAMPLES`` raises the count."""
    return settings(
        max_examples=FUZZ_EXAMPLES or default_examples,
        deadline=None,
        derandomize=not FUZZ_RANDOM,
        database=None if not FUZZ_RANDOM else settings().database,  # the active profile's
        print_blob=False,
        # Each example is a real HTTP round trip through the gateway (milliseconds, not microseconds),
        # and the fixtures (gateway, recorder) are deliberately shared by all examples of a test:
        # the state they keep is what the properties are about.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# ---------------------------------------------------------------------------------------------
# the redirect URIs the gateways below allow
# ---------------------------------------------------------------------------------------------

PROJECT = "linking-demo-4f2a1"
APP_LINK_PATTERN = "https://app.example.com/alexa/link/*"
APP_LINK = "https://app.example.com/alexa/link/Xy7-k_9"
ALEXA_NA = ALEXA_REDIRECT
ALEXA_EU = f"https://layla.amazon.com/api/skill/link/{VENDOR}"
ALEXA_FE = f"https://alexa.amazon.co.jp/api/skill/link/{VENDOR}"
ALEXA_SPA = f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}"
ALEXA_SPA_EU = f"https://layla.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}"
GOOGLE = f"https://oauth-redirect.googleusercontent.com/r/{PROJECT}"
GOOGLE_SANDBOX = f"https://oauth-redirect-sandbox.googleusercontent.com/r/{PROJECT}"
LEGIT = {
    "oidc": [ALEXA_NA, ALEXA_EU, ALEXA_FE, ALEXA_SPA, ALEXA_SPA_EU, APP_LINK],
    "google": [GOOGLE, GOOGLE_SANDBOX],
    "implicit": [ALEXA_NA, ALEXA_SPA],
}
PROVIDERS = tuple(LEGIT)
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _corpus_value(expression: str) -> str:
    """A ``py:`` corpus line: string literals joined with ``+``, repeated with ``* N``; nothing else."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"not allowed in a corpus line: {ast.dump(node)}")

    result = value(ast.parse(expression, mode="eval").body)
    if not isinstance(result, str):
        raise ValueError(f"a corpus line must be a string: {expression!r}")
    return result


def load_corpus(path: Path = CORPUS) -> list[tuple[int, str]]:
    """``(line number, URI)`` for every entry of the corpus file."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        entries.append((number, _corpus_value(line[4:]) if line.startswith("py: ") else line))
    return entries


CORPUS_URIS = [uri for _, uri in load_corpus()]


# ---------------------------------------------------------------------------------------------
# fixtures: a recording upstream token endpoint, a gateway with three providers
# ---------------------------------------------------------------------------------------------

GOOD_TOKEN = (200, "application/json", b'{"access_token":"at-1","token_type":"bearer","expires_in":3600,"refresh_token":"rt-1"}')


#: The sealing keys of the gateways started here (fuzz_gateway adds its own).
_SEALING_KEYS: set[str] = set()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def log_audit(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every fuzz test, counted: the gateway's 5xx answers, and log lines holding a secret.

    A 5xx is allowed only after an upstream call (502/503 for an upstream's answer or silence);
    any other is a bug. A line holding the platform secret, the upstream secret or a sealing key
    is a bug whatever its level. The counts are printed (``-s``) for the long run's report.
    """
    capture = _Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
    secrets_ = [PLATFORM_SECRET, UPSTREAM_SECRET, *_SEALING_KEYS]
    formatter = logging.Formatter()
    leaking = []
    for record in capture.records:
        text = record.getMessage() + " " + repr(vars(record)) + (formatter.formatException(record.exc_info) if record.exc_info else "")
        if any(secret in text for secret in secrets_):
            leaking.append(record.getMessage())
    answers = [record for record in capture.records if record.name == "gateway.request"]
    server_errors = [record for record in answers if getattr(record, "status", 0) >= 500]
    unexplained = [
        record for record in server_errors
        if getattr(record, "upstream_status", None) is None and not getattr(record, "upstream_failure", "")
    ]
    print(
        f"\n[fuzz audit] {request.node.name}: {len(answers)} answers, {len(server_errors)} 5xx "
        f"({len(unexplained)} without an upstream call), {len(capture.records)} log lines, {len(leaking)} holding a secret"
    )
    assert not leaking, leaking[:3]
    assert not unexplained, [record.getMessage() for record in unexplained[:3]]


def reply(answer: tuple[int, str, bytes]) -> Reply:
    """The recording upstream's reply for a drawn ``(status, Content-Type, body)`` ("": no Content-Type)."""
    status, content_type, body = answer
    return Reply(status=status, content_type=content_type or None, body=body)


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    """Plays the upstream token endpoint: answers :data:`GOOD_TOKEN` until told otherwise."""
    async with RecordingUpstream() as server:
        server.fault = reply(GOOD_TOKEN)
        yield server


def received(recorder: RecordingUpstream, since: int = 0) -> list[dict[str, str]]:
    """The parameters of each token request the recorder received (query and body together)."""
    return [request.params for request in recorder.token_requests[since:]]


def google_mapping(upstream: OidcUpstream, **options: Any) -> str:
    text = mapping_yaml(upstream, **options)
    alexa = f"  profile: alexa\n  vendor_ids: [{VENDOR}]\n"
    assert alexa in text
    return text.replace(alexa, f"  profile: google\n  project_ids: [{PROJECT}]\n")


@pytest.fixture
async def fuzz_gateway(tmp_path: Path, gateway_socket: socket.socket, upstream: OidcUpstream, recorder: RecordingUpstream) -> AsyncIterator[Gateway]:
    """``oidc``: alexa (vendor pinned) + the app-link pattern; ``google``: google (project pinned);
    ``implicit``: alexa with the implicit grant. Token requests go to the recorder."""
    mappings = {
        "oidc": mapping_yaml(upstream, token_url=recorder.token_endpoint, platform_extra=f'redirect_uris: ["{APP_LINK_PATTERN}"]\n'),
        "google": google_mapping(upstream, token_url=recorder.token_endpoint),
        "implicit": mapping_yaml(upstream, token_url=recorder.token_endpoint, extra="grant: implicit\n"),
    }
    gateway = await start_gateway(tmp_path, mappings, sock=gateway_socket)
    _SEALING_KEYS.update(gateway.config.keys)
    yield gateway
    await gateway.runner.cleanup()


# ---------------------------------------------------------------------------------------------
# plumbing: Hypothesis in a worker thread, requests on the test's loop
# ---------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    @property
    def from_gateway(self) -> bool:
        """The gateway's middleware saw the request (aiohttp's parser did not refuse it first)."""
        return "X-Request-Id" in self.headers

    def json(self) -> Any:
        return json.loads(self.body)


class Driver:
    """Runs coroutines on the test's event loop from the Hypothesis thread, with a hang deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession, gateway: Gateway) -> None:
        self.loop = loop
        self.session = session
        self.gateway = gateway
        self.port = yarl.URL(gateway.url).port

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=HANG_SECONDS)
        except TimeoutError:
            future.cancel()
            raise AssertionError(f"the gateway did not answer within {HANG_SECONDS}s (hang)") from None

    async def arequest(
        self, method: str, target: str, headers: Any = None, data: bytes | None = None, skip: tuple[str, ...] = ()
    ) -> Answer:
        url = yarl.URL(self.gateway.url + target, encoded=True)
        async with self.session.request(
            method,
            url,
            headers=headers,
            data=data,
            allow_redirects=False,
            skip_auto_headers=skip,
            timeout=aiohttp.ClientTimeout(total=HANG_SECONDS),
        ) as response:
            return Answer(response.status, CIMultiDict(response.headers), await response.read())

    def request(
        self, method: str, target: str, *, headers: Any = None, data: bytes | None = None, skip: tuple[str, ...] = ()
    ) -> Answer:
        """``target`` is sent as is (already percent-encoded)."""
        return self.run(self.arequest(method, target, headers, data, skip))

    async def araw(self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Answer:
        """A hand-written HTTP/1.1 request: header bytes exactly as given (no client-side checks)."""
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        if body or method == "POST":
            head += b"Content-Length: %d\r\n" % len(body)
        request = head + b"\r\n" + body
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(request)
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        answer_head, _, answer_body = data.partition(b"\r\n\r\n")
        lines = answer_head.split(b"\r\n")
        answer_headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            answer_headers.add(name.decode("latin-1"), value.strip().decode("latin-1"))
        return Answer(int(lines[0].split()[1]), answer_headers, answer_body)

    def raw(self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Answer:
        return self.run(self.araw(method, target, headers, body))


async def in_thread(check: Callable[[], None]) -> None:
    """Run a synchronous Hypothesis test while the event loop keeps serving the gateway."""
    await asyncio.to_thread(check)


def allowed_prefix(policy: RedirectPolicy, location: str) -> str | None:
    """The part of ``location`` before the parameters the gateway appended, if the policy allows it."""
    for index, char in enumerate(location):
        if char in "?&#" and policy.allows(location[:index]):
            return location[:index]
    return None


def assert_html_page(answer: Answer, what: str) -> None:
    assert answer.status < 500, f"{what}: {answer.status} {answer.body[:300]!r}"
    if not answer.from_gateway:
        return
    assert 400 <= answer.status < 500, f"{what}: {answer.status}"
    assert "Location" not in answer.headers, f"{what}: redirected to {answer.headers['Location']!r}"
    assert answer.headers.get("Content-Type", "").startswith("text/html"), f"{what}: {answer.headers.get('Content-Type')}"
    assert answer.headers.get("Cache-Control") == "no-store", what


def set_cookie_of(answer: Answer, name: str) -> str | None:
    for header in answer.headers.getall("Set-Cookie", []):
        if header.startswith(f"{name}="):
            return header.split(";", 1)[0].split("=", 1)[1]
    return None


# ---------------------------------------------------------------------------------------------
# 1. the open-redirect corpus
# ---------------------------------------------------------------------------------------------


def test_corpus_is_big_and_varied() -> None:
    uris = CORPUS_URIS
    assert len(uris) >= 80
    assert len(set(uris)) == len(uris), "duplicate corpus entries"
    for needle in (
        "@",
        "%2F",
        "%2E",
        "%40",
        "%5C",
        "%25",
        "\\",
        "..",
        "#",
        "\r\n",
        "\x00",
        "．",
        "xn--",
        "[::",
        "HTTPS://",
        "javascript:",
        "data:",
        "http://",
        ":8443",
    ):
        assert any(needle in uri for uri in uris), f"the corpus has nothing with {needle!r}"
    assert "" in uris and any(len(uri) > 4096 for uri in uris)
    for provider, legit in LEGIT.items():
        assert not set(legit) & set(uris), provider


async def test_open_redirect_corpus_gets_html_and_legit_uris_redirect(
    fuzz_gateway: Gateway, platform: aiohttp.ClientSession, upstream: OidcUpstream
) -> None:
    wrong: list[str] = []
    for provider in ("oidc", "google"):
        policy = fuzz_gateway.config.providers[provider].platform.redirect_policy
        for uri in CORPUS_URIS:
            assert not policy.allows(uri), f"policy of {provider} allows corpus entry {uri!r}"
            async with platform.get(fuzz_gateway.authorize_url(provider, redirect_uri=uri), allow_redirects=False) as response:
                body = await response.text()
                ok = (
                    400 <= response.status < 500
                    and response.content_type == "text/html"
                    and "Location" not in response.headers
                    and response.headers.get("Cache-Control") == "no-store"
                    and "<html" in body
                )
                if not ok:
                    wrong.append(f"{provider} {uri[:120]!r}: {response.status} {response.headers.get('Location', '')[:120]}")

    for provider, legit in LEGIT.items():
        response_type = "token" if provider == "implicit" else "code"
        for uri in legit:
            url = fuzz_gateway.authorize_url(provider, redirect_uri=uri, response_type=response_type)
            async with platform.get(url, allow_redirects=False) as response:
                location = response.headers.get("Location", "")
                if response.status != 302 or not location.startswith(upstream.authorization_endpoint + "?"):
                    wrong.append(f"legit {provider} {uri!r}: {response.status} {location[:120]}")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------------
# shared strategies
# ---------------------------------------------------------------------------------------------

AUTHORIZE_PARAMS = [
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "user_locale",
    "ui_locales",
    "prompt",
    "nonce",
    "response_mode",
]
VALID_CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 64).digest()).rstrip(b"=").decode()
INTERESTING = [
    PLATFORM_ID,
    "",
    "code",
    "token",
    "id_token",
    "code token",
    "S256",
    "plain",
    "s256",
    VALID_CHALLENGE,
    "a" * 43,
    "openid profile",
    "openid",
    "en-US",
    *[uri for uris in LEGIT.values() for uri in uris],
    "alexa-skill ",
    "ALEXA-SKILL",
]
#: Characters that may stand unencoded in a request target's query (and '%' for broken escapes).
RAW_QUERY_ALPHABET = "%0123456789abcdefABCDEFxz+&=;/?:@!$'()*,.-_~[]"

text = st.text(max_size=40)
raw_query_text = st.text(alphabet=RAW_QUERY_ALPHABET, max_size=30)
encoded_value = st.one_of(
    st.sampled_from(INTERESTING + CORPUS_URIS[::7]).map(lambda value: quote(value, safe="")),
    text.map(lambda value: quote(value, safe="")),
    raw_query_text,
    st.binary(max_size=24).map(lambda data: quote_from_bytes(data, safe="")),
    st.integers(min_value=1400, max_value=6000).map(lambda n: "A" * n),
)
encoded_key = st.one_of(st.sampled_from(AUTHORIZE_PARAMS), text.map(lambda key: quote(key, safe="")), raw_query_text)
provider_segment = st.one_of(
    st.sampled_from(PROVIDERS), st.sampled_from(PROVIDERS), st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True)
)


def query_of_pairs(pairs: list[tuple[str, str | None]]) -> str:
    return "&".join(key if value is None else f"{key}={value}" for key, value in pairs)


#: Long platform states: ASCII up to the 1500-character cap, and non-ASCII ones whose JSON escapes
#: would make the flow cookie too big for browsers (bug 5: now an invalid_request redirect).
long_states = st.one_of(
    st.integers(min_value=300, max_value=1500).map(lambda n: "~" * n),
    st.integers(min_value=300, max_value=1300).map(lambda n: "\u00e9" * n),
)


# Strategies the composite strategies below draw from on every example, built once here: a
# strategy built inside a draw is validated afresh each time (Hypothesis caches that per object),
# which costs more than the request. Built once or per draw, they draw the same examples.
encoded_pair = st.tuples(encoded_key, st.one_of(st.none(), encoded_value))
interesting_value = st.one_of(text, st.sampled_from(INTERESTING + CORPUS_URIS))


@st.composite
def authorize_queries(draw: st.DrawFn, provider: str) -> str:
    """A query string: either random pairs, or a valid request for ``provider`` with mutations."""
    if draw(st.booleans()):
        noise = draw(st.lists(encoded_pair, max_size=8))
        return query_of_pairs(noise) + draw(st.sampled_from(["", "", "&", "&&", "=", "?x"]))
    legit = LEGIT.get(provider, LEGIT["oidc"])
    valid: dict[str, str] = {
        "client_id": PLATFORM_ID,
        "redirect_uri": draw(st.sampled_from(legit)),
        "response_type": "token" if provider == "implicit" else "code",
        "state": draw(st.one_of(text, st.just("alexa-state"), long_states)),
        "scope": "openid profile",
    }
    if draw(st.booleans()):
        valid.update(code_challenge=VALID_CHALLENGE, code_challenge_method="S256")
    pairs: list[tuple[str, str | None]] = [(key, quote(value, safe="")) for key, value in valid.items()]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):  # a few mutations, often none
        operation = draw(st.sampled_from(["drop", "override", "add", "duplicate"]))
        if operation == "drop" and pairs:
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        elif operation == "override" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            value = draw(interesting_value)
            pairs[index] = (pairs[index][0], quote(value, safe=""))
        elif operation == "duplicate" and pairs:
            pairs.append(draw(st.sampled_from(pairs)))
        else:
            pairs.append(draw(encoded_pair))
    return query_of_pairs(draw(st.permutations(pairs)))


# ---------------------------------------------------------------------------------------------
# 2a. /authorize
# ---------------------------------------------------------------------------------------------


def check_authorize(gateway: Gateway, provider: str, target: str, answer: Answer) -> None:
    what = f"GET {target[:300]}"
    assert answer.status < 500, f"{what}: {answer.status} {answer.body[:300]!r}"
    mapping = gateway.config.providers.get(provider)
    if answer.status not in REDIRECTS:
        assert_html_page(answer, what)
        return
    assert mapping is not None, what
    location = answer.headers["Location"]
    policy = mapping.platform.redirect_policy
    query = yarl.URL(target, encoded=True).query
    redirect_uris = query.getall("redirect_uri", [])
    if location.startswith(mapping.authorize.url + "?"):
        # A flow started: only for the right client and an allowed redirect URI, each sent once.
        assert query.getall("client_id", []) == [PLATFORM_ID], what
        assert len(redirect_uris) == 1 and policy.allows(redirect_uris[0]), what
        upstream_query = yarl.URL(location).query
        assert upstream_query.get("state") and upstream_query.get("client_id") == mapping.upstream_client_id, location
        name = gateway.config.cookie.name
        cookie = set_cookie_of(answer, name)
        assert cookie, f"{what}: a flow started without a flow cookie"
        # RFC 6265 §6.1; browsers drop a cookie whose name and value exceed 4096 bytes.
        assert len(name) + 1 + len(cookie) <= 4096, f"{what}: a flow cookie of {len(cookie)} bytes, which browsers drop"
        return
    prefix = allowed_prefix(policy, location)
    assert prefix is not None, f"OPEN REDIRECT: {what} -> {location!r}"
    assert redirect_uris == [prefix], f"{what}: error redirect to {prefix!r}, not the request's redirect_uri"
    assert "error=" in location[len(prefix) :], location


async def test_fuzz_authorize(fuzz_gateway: Gateway, platform: aiohttp.ClientSession) -> None:
    driver = Driver(asyncio.get_running_loop(), platform, fuzz_gateway)
    seen: dict[int, int] = {}
    # Flow cookies that already hold flows (one with four flows with long states, at the size cap).
    flows = await start_flows(platform, fuzz_gateway)
    name = fuzz_gateway.config.cookie.name
    big = ""
    for index in range(5):
        cookie_header = {"Cookie": f"{name}={big}"} if big else {}
        url = fuzz_gateway.authorize_url("oidc", state=f"{index}" + "s" * 1400)
        async with platform.get(url, headers=cookie_header, allow_redirects=False) as response:
            assert response.status == 302
            big = response.cookies[name].value
    cookies = [None, None, flows.single, flows.multi, big]

    @fuzz_settings(600)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        provider = data.draw(provider_segment, label="provider")
        query = data.draw(authorize_queries(provider), label="query")
        target = f"/{provider}/authorize" + (f"?{query}" if query or data.draw(st.booleans()) else "")
        cookie = data.draw(st.sampled_from(cookies), label="cookie")
        answer = driver.request("GET", target, headers={"Cookie": f"{name}={cookie}"} if cookie else None)
        seen[answer.status] = seen.get(answer.status, 0) + 1
        check_authorize(fuzz_gateway, provider, target, answer)

    await in_thread(check)
    # The generator must reach every kind of answer, or the invariants above prove little.
    assert seen.get(302, 0) >= 20 and seen.get(400, 0) >= 20, seen
    assert sum(count for status, count in seen.items() if status not in (302, 400)) >= 5, seen


# ---------------------------------------------------------------------------------------------
# 2b. /callback
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    provider: str
    redirect_uri: str
    state: str


@dataclass
class Flows:
    """Real flow cookies from real /authorize calls, and what each holds."""

    cookie_name: str
    single: str = ""
    multi: str = ""
    by_cookie: dict[bytes, dict[str, Flow]] = field(default_factory=dict)  # decoded cookie -> its flows

    def nonces(self) -> list[str]:
        return sorted({nonce for flows in self.by_cookie.values() for nonce in flows})

    def add(self, cookie: str, flows: dict[str, Flow]) -> None:
        self.by_cookie[self.decoded(cookie)] = flows

    @staticmethod
    def decoded(cookie: str) -> bytes:
        """What the seal reads: base64 (its padding left out) that differs only in ignored bits is
        the same cookie."""
        try:
            return base64.urlsafe_b64decode(cookie.encode() + b"=" * (-len(cookie) % 4))
        except (ValueError, UnicodeEncodeError):
            return b"\x00not a cookie"

    def held_by(self, headers: list[tuple[bytes, bytes]]) -> dict[str, Flow]:
        """Every flow any flow cookie in ``headers`` holds (a superset of what the gateway reads)."""
        held: dict[str, Flow] = {}
        for name, value in headers:
            if name.lower() != b"cookie":
                continue
            for part in value.decode("utf-8", "replace").split(";"):
                key, _, cookie = part.strip().partition("=")
                if key == self.cookie_name:
                    held.update(self.by_cookie.get(self.decoded(cookie), {}))
        return held


async def start_flows(session: aiohttp.ClientSession, gateway: Gateway) -> Flows:
    flows = Flows(gateway.config.cookie.name)
    cookie = ""
    held: dict[str, Flow] = {}
    steps = [
        ("oidc", ALEXA_NA, "code"),
        ("oidc", ALEXA_SPA, "code"),
        ("google", GOOGLE, "code"),
        ("implicit", ALEXA_SPA, "token"),
        ("oidc", APP_LINK, "code"),
    ]
    for index, (provider, redirect_uri, response_type) in enumerate(steps):
        state = f"platform-state-{index} &é"
        url = gateway.authorize_url(provider, redirect_uri=redirect_uri, response_type=response_type, state=state)
        headers = {"Cookie": f"{flows.cookie_name}={cookie}"} if cookie and index > 1 else {}
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            nonce = yarl.URL(response.headers["Location"]).query["state"]
            cookie = response.cookies[flows.cookie_name].value
        if index == 0:
            flows.single = cookie
            flows.add(cookie, {nonce: Flow(provider, redirect_uri, state)})
        else:
            held = {**(held if index > 1 else {}), nonce: Flow(provider, redirect_uri, state)}
    # The cookie keeps at most max_flows flows: the oldest went.
    while len(held) > gateway.config.cookie.max_flows:
        held.pop(next(iter(held)))
    flows.multi = cookie
    flows.add(cookie, held)
    return flows


CALLBACK_PARAMS = ["state", "code", "iss", "error", "error_description", "error_uri", "session_state", "scope"]


@st.composite
def callback_requests(
    draw: st.DrawFn, flows: Flows, issuer: str, sealed: list[str]
) -> tuple[str, str, list[tuple[bytes, bytes]], bool]:
    """``(provider, query, headers, raw)``: half of them aim at a real flow (its cookie, its nonce,
    mostly its provider), the other half at anything; raw = send the header bytes by hand."""
    name = flows.cookie_name.encode()
    values = st.one_of(
        st.sampled_from(flows.nonces()),
        st.sampled_from(
            [
                "access_denied",
                "invalid_scope",
                "server_error",
                "invalid_request",
                "temporarily_unavailable",
                "bogus",
                issuer,
                issuer + "/",
                "https://evil.example",
                "",
            ]
        ),
        text,
    )
    params: dict[str, str] = {}
    if draw(st.booleans()):
        cookie = draw(st.sampled_from([flows.single, flows.multi]))
        nonce, flow = draw(st.sampled_from(sorted(flows.by_cookie[Flows.decoded(cookie)].items())))
        provider = draw(st.one_of(st.just(flow.provider), st.just(flow.provider), provider_segment))
        params["state"] = nonce
        params.update(
            draw(
                st.dictionaries(
                    st.sampled_from(["code", "iss", "error", "error_description"]),
                    st.one_of(st.just("upstream-code"), st.just(issuer), values),
                    max_size=3,
                )
            )
        )
        cookie_value = cookie.encode()
    else:
        provider = draw(provider_segment)
        if draw(st.booleans()):
            params["state"] = draw(st.sampled_from(flows.nonces()))
        params.update(draw(st.dictionaries(st.sampled_from(CALLBACK_PARAMS), values, max_size=4)))
        real = [flows.single, flows.multi]
        cookie_value = draw(
            st.one_of(
                st.sampled_from(real),
                st.sampled_from(real).flatmap(lambda cookie: st.integers(0, len(cookie)).map(lambda cut: cookie[:cut])),
                st.sampled_from(real).flatmap(
                    lambda cookie: st.integers(0, len(cookie) - 1).map(
                        lambda at: cookie[:at] + ("A" if cookie[at] != "A" else "B") + cookie[at + 1 :]
                    )
                ),
                st.sampled_from(sealed),
                text.filter(lambda value: not any(ch in value for ch in "\r\n\x00;")),
                st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";"), max_size=200),
            ).map(str.encode)
        )
        if draw(st.integers(0, 9)) == 0:
            cookie_value = draw(st.binary(max_size=60).filter(lambda data: not any(byte in data for byte in b"\r\n;")))
    pairs: list[tuple[str, str | None]] = [(key, quote(value, safe="")) for key, value in params.items()]
    if draw(st.integers(0, 3)) == 0:
        pairs += draw(st.lists(encoded_pair, min_size=1, max_size=2))
    query = query_of_pairs(draw(st.permutations(pairs)))
    headers = draw(
        st.sampled_from(
            [
                [(b"Cookie", name + b"=" + cookie_value)],
                [(b"Cookie", name + b"=" + cookie_value)],
                [],
                [(b"Cookie", b"other=1; " + name + b"=" + cookie_value + b"; x=y")],
                [(b"Cookie", name + b"=" + cookie_value), (b"Cookie", name + b"=" + flows.single.encode())],
                [(b"Cookie", name + b"=" + flows.single.encode() + b"; " + name + b"=" + cookie_value)],
                [(b"Cookie", b"other=" + cookie_value)],
            ]
        )
    )
    # aiohttp's client refuses control characters in headers: those go by hand too.
    raw = draw(st.booleans()) or any(byte >= 0x7F or byte < 0x20 for _, value in headers for byte in value)
    return provider, query, headers, raw


async def test_fuzz_callback(
    fuzz_gateway: Gateway, platform: aiohttp.ClientSession, upstream: OidcUpstream, recorder: RecordingUpstream
) -> None:
    driver = Driver(asyncio.get_running_loop(), platform, fuzz_gateway)
    flows = await start_flows(platform, fuzz_gateway)
    sealer = Sealer(fuzz_gateway.config.keys)
    sealed = [
        seal_code(sealer, CodePayload("x", PLATFORM_ID, ALEXA_NA, "oidc"), ttl=300),
        sealer.seal("cookie", {"flows": {}}, ttl=300),
        seal_code(Sealer([generate_key()]), CodePayload("x", "", "", ""), ttl=300),
        Fernet(fuzz_gateway.config.keys[0].encode())
        .encrypt(b'{"created": 1, "session": {"flows": {"n": {"p": "oidc"}}}}')
        .decode(),
    ]
    redirected = 0

    @fuzz_settings(600)
    @given(request=callback_requests(flows, upstream.issuer, sealed))
    def check(request: tuple[str, str, list[tuple[bytes, bytes]], bool]) -> None:
        nonlocal redirected
        provider, query, headers, raw = request
        # Each example may present a genuine pre-callback flow afresh; the state's single use
        # across copies of a cookie is test_refresh_grace.py's.
        fuzz_gateway.runner.app[STORE].local.clear()
        fuzz_gateway.runner.app[GRACE].flights.forget()
        target = f"/{provider}/callback" + (f"?{query}" if query else "")
        if raw:
            answer = driver.raw("GET", target, headers)
        else:
            answer = driver.request("GET", target, headers=CIMultiDict((k.decode(), v.decode()) for k, v in headers))
        what = f"GET {target[:300]} {headers!r:.300}"
        assert answer.status < 500, f"{what}: {answer.status} {answer.body[:300]!r}"
        if answer.status not in REDIRECTS:
            assert_html_page(answer, what)
            return
        redirected += 1
        # A redirect: only for a state that names a flow of the cookie sent, of this provider.
        params = yarl.URL(target, encoded=True).query
        states = params.getall("state", [])
        held = flows.held_by(headers)
        assert len(states) == 1 and states[0] in held, f"{what}: redirected without a matching flow"
        flow = held[states[0]]
        assert flow.provider == provider, f"{what}: a flow of {flow.provider} completed at /{provider}"
        if "iss" in params:
            assert params.getall("iss") == [upstream.issuer], what
        location = answer.headers["Location"]
        policy = fuzz_gateway.config.providers[provider].platform.redirect_policy
        assert allowed_prefix(policy, location) == flow.redirect_uri, f"OPEN REDIRECT: {what} -> {location!r}"
        separator = location[len(flow.redirect_uri)]
        assert separator == ("#" if provider == "implicit" else ("&" if "?" in flow.redirect_uri else "?")), location
        sent = dict(parse_qsl(location[len(flow.redirect_uri) + 1 :], keep_blank_values=True))
        assert sent.get("state") == flow.state, location
        if "code" in sent:
            opened = open_code(sealer, sent["code"])
            assert (opened.client_id, opened.redirect_uri, opened.provider, opened.upstream_code) == (
                PLATFORM_ID,
                flow.redirect_uri,
                provider,
                params["code"],
            )
        else:
            assert "error" in sent or "access_token" in sent, location

    await in_thread(check)
    assert redirected >= 40, redirected


# ---------------------------------------------------------------------------------------------
# 2c. /token
# ---------------------------------------------------------------------------------------------


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Codes:
    """Codes for the /token fuzzer: which are genuine, and everything that only looks like one."""

    genuine: dict[str, CodePayload]  # sealed code -> payload (issued by this gateway, live)
    verifiers: dict[str, str]  # genuine PKCE code -> its verifier
    forged: list[str]


def make_codes(gateway: Gateway) -> Codes:
    sealer = Sealer(gateway.config.keys)
    verifier = "v" * 20 + "-._~" + "x" * 30

    def seal(ttl: int = 300, purpose: str = CODE_PURPOSE, now: float | None = None, **changes: Any) -> str:
        # Each sealed code carries an upstream code of its own (what it differs in, hashed), so an
        # upstream call tells which code it came from (check_token).
        own = repr((changes, ttl, purpose, now is None)).encode()
        payload = CodePayload("up-" + hashlib.sha1(own).hexdigest()[:8], PLATFORM_ID, ALEXA_NA, "oidc")
        return sealer.seal(purpose, dataclasses.replace(payload, **changes).to_wire(), ttl=ttl, now=now)

    # Genuine: what /callback would have issued (a code is genuine only at its own provider's /token).
    genuine_plain = seal()
    genuine_spa = seal(redirect_uri=ALEXA_SPA)
    genuine_pkce = seal(challenge=Challenge(s256(verifier), "S256"))
    genuine_google = seal(provider="google", redirect_uri=GOOGLE)
    genuine = {code: open_code(sealer, code) for code in (genuine_plain, genuine_spa, genuine_pkce, genuine_google)}
    forged = [
        seal(provider="other"),
        seal(client_id="other-client"),
        seal(client_id="other-client", provider="google", redirect_uri=GOOGLE),
        seal(redirect_uri=ALEXA_EU),
        seal(redirect_uri=APP_LINK),
        seal(purpose="cookie"),
        seal(purpose="flow"),
        seal(now=time.time() - 3600),
        seal(ttl=-1),
        seal_code(Sealer([generate_key()]), CodePayload("up-x", PLATFORM_ID, ALEXA_NA, "oidc"), ttl=300),
        genuine_plain[:-2],
        genuine_plain[:40] + ("A" if genuine_plain[40] != "A" else "B") + genuine_plain[41:],
        genuine_plain.upper(),
        base64.urlsafe_b64encode(b"\x80" + b"\x00" * 60).decode(),
        "gAAAAA",
        "=" * 10,
        "code",
    ]
    assert not set(forged) & set(genuine)
    # Not forged: base64 that decodes to the same bytes is the same sealed code to Fernet (which
    # ignores what follows the padding), so it opens like the original, which the holder already has.
    genuine[genuine_plain + "A"] = genuine[genuine_plain]
    return Codes(genuine, {genuine_pkce: verifier}, forged)


GRANTS = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "implicit",
    "AUTHORIZATION_CODE",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "",
]
TOKEN_PARAMS = ["grant_type", "code", "redirect_uri", "client_id", "client_secret", "refresh_token", "code_verifier", "scope"]
CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
    "application/octet-stream",
]
header_text = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), max_size=60)


@functools.cache
def upstream_answers() -> st.SearchStrategy[tuple[int, str, bytes]]:
    """What the recorder answers: good tokens, RFC errors, outages, junk.

    Built once (cached): token_requests draws it per example, and a freshly built recursive
    strategy is validated afresh each time, which cost more than the HTTP round trip. The same
    strategy draws the same examples, so the derandomized runs are unchanged."""
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
        max_leaves=12,
    )
    token_like = st.fixed_dictionaries(
        {"access_token": st.one_of(st.text(max_size=20), st.integers(), st.none(), json_values)},
        optional={
            "token_type": json_values,
            "expires_in": json_values,
            "refresh_token": json_values,
            "scope": json_values,
            "error": st.one_of(st.sampled_from(sorted(TOKEN_ERRORS)), text),
            "expires_at": json_values,
        },
    )
    bodies = st.one_of(
        st.just(GOOD_TOKEN[2]),
        st.just(GOOD_TOKEN[2]),
        token_like.map(lambda value: json.dumps(value).encode()),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.dictionaries(st.sampled_from(["error", "error_description", "access_token"]), st.text(max_size=20)).map(
            lambda value: urlencode(value).encode()
        ),
        st.binary(max_size=80),
        st.just(b"<html><body>Bad gateway</body></html>"),
        st.just(b""),
    )
    nasty = [b"[" * 3000 + b"]" * 3000, b'{"access_token":"at","expires_in":1' + b"0" * 400 + b"}"]
    bodies = st.one_of(st.sampled_from(nasty), bodies)  # bugs 3 and 4
    return st.tuples(
        st.sampled_from([200, 200, 200, 201, 400, 401, 403, 404, 408, 429, 500, 502, 503]),
        st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/html", "text/plain", ""]),
        bodies,
    )


extra_token_params = st.lists(st.tuples(st.sampled_from(TOKEN_PARAMS) | text, text), max_size=2)
content_type_values = st.one_of(st.sampled_from(CONTENT_TYPES), header_text)


@st.composite
def token_requests(draw: st.DrawFn, codes: Codes) -> dict[str, Any]:
    """A POST to /{provider}/token: provider, body bytes, headers, and the answer the upstream gives.

    A third of them start as a complete, genuine code exchange and get at most light mutations, so
    that the upstream is reached often enough to check what happens after it answers."""
    if codes.genuine and draw(st.integers(0, 2)) == 0:
        code, opened = draw(st.sampled_from(sorted(codes.genuine.items())))
        form: list[tuple[str, str]] = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", opened.redirect_uri)]
        if code in codes.verifiers:
            form.append(("code_verifier", codes.verifiers[code]))
        headers: dict[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}
        if draw(st.booleans()):
            headers["Authorization"] = PLATFORM_BASIC
        else:
            form += [("client_id", PLATFORM_ID), ("client_secret", PLATFORM_SECRET)]
        if draw(st.integers(0, 3)) == 0:
            form.pop(draw(st.integers(0, len(form) - 1)))
        if draw(st.integers(0, 3)) == 0:
            form.append((draw(st.sampled_from(TOKEN_PARAMS)), draw(text)))
        upstream = draw(st.one_of(st.just(GOOD_TOKEN), upstream_answers()))
        return {
            "provider": opened.provider,
            "body": urlencode(draw(st.permutations(form))).encode(),
            "headers": headers,
            "upstream": upstream,
        }
    provider = draw(st.sampled_from(["oidc", "oidc", "oidc", "google", "google", "implicit", "nope"]))
    code_values = st.one_of(st.sampled_from(sorted(codes.genuine) or codes.forged), st.sampled_from(codes.forged), text)
    form = []
    kind = draw(st.sampled_from(["code", "code", "refresh", "random"]))
    if kind == "code":
        code = draw(code_values)
        own = codes.genuine[code].redirect_uri if code in codes.genuine else ALEXA_NA
        others = st.sampled_from([ALEXA_NA, ALEXA_SPA, ALEXA_EU, APP_LINK, GOOGLE, own + "/", ""])
        form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", draw(st.one_of(st.just(own), others)))]
        if code in codes.verifiers or draw(st.integers(0, 4)) == 0:
            form.append(("code_verifier", draw(st.sampled_from([codes.verifiers.get(code, "w" * 50), "w" * 50, "short", ""]))))
    elif kind == "refresh":
        form = [("grant_type", "refresh_token"), ("refresh_token", draw(st.one_of(text, st.sampled_from(codes.forged))))]
    else:
        form = [
            (draw(st.sampled_from(TOKEN_PARAMS)), draw(st.one_of(text, code_values, st.sampled_from(GRANTS))))
            for _ in range(draw(st.integers(0, 5)))
        ]
    auth = draw(st.sampled_from(["basic", "basic", "body", "none", "both", "wrong-basic", "wrong-body", "header-junk"]))
    headers = {}
    if auth in ("body", "both", "wrong-body"):
        form += [("client_id", PLATFORM_ID), ("client_secret", PLATFORM_SECRET if auth != "wrong-body" else "nope")]
    if auth in ("basic", "both", "wrong-basic"):
        headers["Authorization"] = basic(PLATFORM_ID, PLATFORM_SECRET if auth != "wrong-basic" else draw(text))
    if auth == "header-junk":
        headers["Authorization"] = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "Bearer at-1",
                        "Basic",
                        "Basic ",
                        "Basic ====",
                        "basic " + PLATFORM_BASIC[6:],
                        "Basic " + base64.b64encode(b"\xff\xfe:\x80").decode(),
                        "Basic " + base64.b64encode(b"no-colon").decode(),
                        "Basic " + base64.b64encode(f"{quote(PLATFORM_ID)}:{quote(PLATFORM_SECRET)}".encode()).decode(),
                        "Basic YWxleGEtc2tpbGw6YWxleGEtc2tpbGwtc2VjcmV0\u00e9",
                        "Digest username=x",
                        "Basic Zm9v\u2028",
                    ]
                ),
                header_text,
            )
        )
    # Mutations: drop, duplicate, add random parameters.
    if form and draw(st.integers(0, 3)) == 0:
        form.pop(draw(st.integers(0, len(form) - 1)))
    if form and draw(st.integers(0, 5)) == 0:
        form.append(draw(st.sampled_from(form)))
    form += draw(extra_token_params)
    form = draw(st.permutations(form))

    encoding = draw(st.sampled_from(["form", "form", "form", "json", "bytes", "huge", "empty", "percent-junk"]))
    if encoding == "form":
        body = urlencode(form).encode()
    elif encoding == "json":
        body = json.dumps(dict(form)).encode()
    elif encoding == "bytes":
        body = draw(st.binary(max_size=200))
    elif encoding == "huge":
        body = urlencode(form).encode() + b"&pad=" + b"A" * draw(st.sampled_from([4100, MAX_BODY_BYTES, 40000]))
    elif encoding == "percent-junk":
        body = (urlencode(form) + "&" + draw(raw_query_text)).encode()
    else:
        body = b""
    content_encoding = draw(st.sampled_from([None, None, None, "gzip", "deflate", "identity"]))
    if content_encoding == "gzip":
        body = gzip.compress(body)
    elif content_encoding == "deflate":
        body = zlib.compress(body)
    if content_encoding in ("gzip", "deflate") and draw(st.booleans()):
        body = b"\x00not " + body  # bug 2: an undecodable body
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    content_type = draw(content_type_values)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return {"provider": provider, "body": body, "headers": headers, "upstream": draw(upstream_answers())}


def gateway_form(body: bytes, headers: dict[str, str]) -> list[tuple[str, str]] | None:
    """The parameters as the gateway reads them (``None``: it refuses the body before reading it)."""
    try:
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        elif headers.get("Content-Encoding") == "deflate":
            body = zlib.decompress(body)
    except (OSError, EOFError, zlib.error):
        return None
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True) if len(body) <= MAX_BODY_BYTES else None
    except UnicodeDecodeError:
        return None


def secret_presented(headers: dict[str, str], params: dict[str, str]) -> bool:
    """The platform's secret was in the body or in an HTTP Basic header (a necessary condition)."""
    if params.get("client_secret") == PLATFORM_SECRET:
        return True
    try:
        decoded = base64.b64decode(headers.get("Authorization", "").partition(" ")[2].strip()).decode()
    except ValueError:
        return False
    return unquote_plus(decoded.partition(":")[2]) == PLATFORM_SECRET


def _sent_for(call: dict[str, str], request: dict[str, Any], codes: Codes) -> bool:
    """The upstream call carries what this example's token request would have made it carry."""
    params = dict(gateway_form(request["body"], request["headers"]) or [])
    if call.get("grant_type") == "refresh_token":
        return params.get("grant_type") == "refresh_token" and call.get("refresh_token") == params.get("refresh_token")
    opened = codes.genuine.get(params.get("code", ""))
    return opened is not None and call.get("code") == opened.upstream_code


def check_token(gateway: Gateway, codes: Codes, request: dict[str, Any], answer: Answer, calls: list[dict[str, str]]) -> int:
    """Check one example; return how many of the upstream calls seen meanwhile were an earlier one's."""
    headers = request["headers"]
    what = (
        f"POST /{request['provider']}/token {headers!r:.300} {request['body'][:300]!r} (upstream: {request['upstream']!r:.200})"
    )
    # Whichever example a code exchange came from, its upstream code is a genuine code's: a forged
    # code never reaches the upstream. (A call can land after its own example was checked: the
    # calls are then told apart by what they carry, not by when they arrived.)
    genuine_upstream = {opened.upstream_code for opened in codes.genuine.values()}
    for call in calls:
        if call.get("grant_type") == "authorization_code":
            assert call.get("code") in genuine_upstream, f"FORGED CODE REACHED THE UPSTREAM: {what}: {call}"
    own = [call for call in calls if _sent_for(call, request, codes)]
    stray = len(calls) - len(own)
    calls = own
    assert len(calls) <= 1, f"{what}: {len(calls)} upstream calls"
    assert answer.status < 500 or (answer.status in (502, 503) and calls), f"{what}: {answer.status} {answer.body[:300]!r}"
    if not answer.from_gateway:
        return stray
    assert answer.headers.get("Content-Type", "").startswith("application/json"), f"{what}: {answer.headers.get('Content-Type')}"
    assert answer.headers.get("Cache-Control") == "no-store", what
    assert answer.headers.get("Pragma") == "no-cache", what
    document = answer.json()
    if answer.status == 200:
        assert calls, what
        assert isinstance(document.get("access_token"), str) and document["access_token"], document
        assert document["token_type"] == "Bearer" and type(document["expires_in"]) is int and document["expires_in"] > 0, document
    else:
        assert document.get("error") in TOKEN_ERRORS, f"{what}: {document}"
    if answer.status == 401:
        assert document["error"] == "invalid_client", document
        assert ("WWW-Authenticate" in answer.headers) == ("Authorization" in headers), f"{what}: {dict(answer.headers)}"
    else:
        assert "WWW-Authenticate" not in answer.headers, what

    form = gateway_form(request["body"], headers)
    params = dict(form or [])
    if request["provider"] == "nope":
        assert answer.status == 404 and not calls, what
    if not calls:
        return stray
    # The upstream was called: the request must have been a complete, authenticated one ...
    assert form is not None and len(params) == len(form), f"{what}: upstream called for a body the gateway should refuse"
    assert secret_presented(headers, params), f"{what}: upstream called for an unauthenticated client"
    call = calls[0]
    if params.get("grant_type") == "refresh_token":
        assert call.get("refresh_token") == params["refresh_token"] and call.get("grant_type") == "refresh_token", call
        return stray
    # ... and a code grant only ever reaches the upstream with a genuine code, for this provider,
    # client and redirect URI, and the right PKCE verifier.
    assert params.get("grant_type") == "authorization_code", what
    code = params.get("code", "")
    assert code in codes.genuine, f"FORGED CODE REACHED THE UPSTREAM: {what}"
    opened = codes.genuine[code]
    assert request["provider"] == opened.provider and params.get("redirect_uri") == opened.redirect_uri, what
    assert params.get("code_verifier") == codes.verifiers.get(code), what
    assert call.get("code") == opened.upstream_code and call.get("grant_type") == "authorization_code", call
    return stray


async def test_fuzz_token(fuzz_gateway: Gateway, platform: aiohttp.ClientSession, recorder: RecordingUpstream) -> None:
    driver = Driver(asyncio.get_running_loop(), platform, fuzz_gateway)
    codes = make_codes(fuzz_gateway)
    redeemed = fuzz_gateway.runner.app[CLAIMS].redeemed
    seen: dict[int, int] = {}
    strays = [0]

    @fuzz_settings(800)
    @given(request=token_requests(codes))
    def check(request: dict[str, Any]) -> None:
        redeemed.clear()  # every example may present a genuine code afresh (replays: test_replay.py)
        fuzz_gateway.runner.app[STORE].local.clear()  # and a refresh token (grace: test_refresh_grace.py)
        fuzz_gateway.runner.app[GRACE].flights.forget()
        recorder.fault = reply(request["upstream"])
        before = len(recorder.token_requests)
        skip = () if "Content-Type" in request["headers"] else ("Content-Type",)
        answer = driver.request(
            "POST", f"/{request['provider']}/token", headers=request["headers"], data=request["body"], skip=skip
        )
        seen[answer.status] = seen.get(answer.status, 0) + 1
        strays[0] += check_token(fuzz_gateway, codes, request, answer, received(recorder, before))

    await in_thread(check)
    print(f"\ntoken fuzz: {sum(seen.values())} requests, {strays[0]} upstream call(s) that landed after their own example")
    assert seen.get(200, 0) >= 5 and seen.get(400, 0) >= 20 and seen.get(401, 0) >= 20, seen
    assert len(recorder.token_requests) >= 20, len(recorder.token_requests)


async def metric(session: aiohttp.ClientSession, gateway: Gateway, name: str) -> float:
    async with session.get(f"{gateway.url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")
    )


async def test_forged_codes_never_reach_the_real_upstream(
    make_gateway: GatewayFactory, platform: aiohttp.ClientSession, browser: aiohttp.ClientSession
) -> None:
    """Against the real oidc-provider: fuzzed code grants make no upstream call (the gateway's own
    upstream latency histogram stays empty), and the one genuine code afterwards makes exactly one."""
    gateway = await make_gateway()
    # Only the forged codes: the genuine ones are sealed by hand, so they would reach the upstream.
    codes = Codes({}, {}, make_codes(gateway).forged)
    driver = Driver(asyncio.get_running_loop(), platform, gateway)
    upstream_calls = "gateway_upstream_request_duration_seconds_count"

    @fuzz_settings(150)
    @given(request=token_requests(codes))
    def check(request: dict[str, Any]) -> None:
        form = gateway_form(request["body"], request["headers"]) or []
        assume(("grant_type", "refresh_token") not in form)  # any refresh token is passed on, by design
        skip = () if "Content-Type" in request["headers"] else ("Content-Type",)
        answer = driver.request(
            "POST", f"/{request['provider']}/token", headers=request["headers"], data=request["body"], skip=skip
        )
        assert answer.status < 500 and answer.status != 200, (request, answer.status, answer.body)

    await in_thread(check)
    assert await metric(platform, gateway, upstream_calls) == 0

    landing = await login_and_consent(browser, gateway.authorize_url(), stop_at_prefix="https://pitangui.amazon.com/")
    code = yarl.URL(str(landing)).query["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT}
    async with platform.post(
        gateway.endpoint("token"), data=form, headers={"Authorization": PLATFORM_BASIC}
    ) as response:
        assert response.status == 200, await response.text()
    assert await metric(platform, gateway, upstream_calls) == 1


# ---------------------------------------------------------------------------------------------
# 2d. operational endpoints, unknown paths, any method
# ---------------------------------------------------------------------------------------------

METHODS = ["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "get"]
PATHS = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
    "/oidc",
    "/oidc/",
    "/oidc/authorize",
    "/oidc/callback",
    "/oidc/token",
    "/nope/token",
    "/_demo/",
    "/favicon.ico",
    "/healthz/",
    "/METRICS",
    "//oidc/authorize",
    "/oidc//token",
    "/%6fidc/authorize",
    "/oidc/authorize/",
    "/oidc/%2e%2e/metrics",
    "/../metrics",
    "/oidc/token%00",
]


async def test_fuzz_operational_endpoints_and_unknown_paths(fuzz_gateway: Gateway, platform: aiohttp.ClientSession) -> None:
    driver = Driver(asyncio.get_running_loop(), platform, fuzz_gateway)
    segment = st.one_of(
        st.sampled_from(["oidc", "google", "token", "authorize", "callback", "metrics", "..", "."]),
        st.from_regex(r"[A-Za-z0-9._~-]{0,12}", fullmatch=True),
        raw_query_text.map(lambda s: s.replace("?", "")),
    )

    @fuzz_settings(300)
    @given(
        method=st.one_of(
            st.sampled_from(METHODS), st.from_regex(r"[A-Z]{1,10}", fullmatch=True).filter(lambda m: m != "CONNECT")
        ),
        path=st.one_of(
            st.sampled_from(PATHS), st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
        ),
        query=st.one_of(st.just(""), raw_query_text.map(lambda q: "?" + q)),
        body=st.one_of(st.none(), st.binary(max_size=100)),
        headers=st.dictionaries(
            st.sampled_from(["X-Request-Id", "Accept", "Content-Type", "Authorization", "Cookie", "Origin"]),
            header_text,
            max_size=3,
        ),
    )
    def check(method: str, path: str, query: str, body: bytes | None, headers: dict[str, str]) -> None:
        answer = driver.request(method, path + query, headers=headers, data=body)
        assert answer.status < 500, f"{method} {path}{query} {headers}: {answer.status} {answer.body[:300]!r}"

    await in_thread(check)
    for path, expected in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200)):
        assert (await driver.arequest("GET", path)).status == expected  # still alive after all that


# ---------------------------------------------------------------------------------------------
# regressions: minimal reproductions of the bugs the fuzzers found (all fixed)
# ---------------------------------------------------------------------------------------------


async def test_bug1_flow_cookie_that_is_not_utf8_gets_a_page(fuzz_gateway: Gateway, platform: aiohttp.ClientSession) -> None:
    driver = Driver(asyncio.get_running_loop(), platform, fuzz_gateway)
    answer = await driver.araw("GET", "/oidc/callback", [(b"Cookie", b"gateway_flow=\x80")])
    assert answer.status == 400, (answer.status, answer.body)
    assert_html_page(answer, "callback with a non-UTF-8 flow cookie")
    authorize = fuzz_gateway.authorize_url("oidc")[len(fuzz_gateway.url) :]
    answer = await driver.araw("GET", authorize, [(b"Cookie", b"gateway_flow=\x80")])
    assert answer.status == 302, (answer.status, answer.body)  # a broken cookie is no cookie


async def test_bug2_token_body_that_does_not_decompress_is_invalid_request(
    fuzz_gateway: Gateway, platform: aiohttp.ClientSession
) -> None:
    driver = Driver(asyncio.get_running_loop(), platform, fuzz_gateway)
    headers = {
        "Content-Encoding": "gzip",
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": PLATFORM_BASIC,
    }
    answer = await driver.arequest("POST", "/oidc/token", headers=headers, data=b"hello")
    assert (answer.status, answer.json().get("error")) == (400, "invalid_request"), (answer.status, answer.body)
    assert answer.headers.get("Cache-Control") == "no-store" and answer.headers.get("Pragma") == "no-cache"


async def _exchange_with_upstream_answer(
    gateway: Gateway, platform: aiohttp.ClientSession, recorder: RecordingUpstream, body: bytes
) -> Answer:
    recorder.fault = reply((200, "application/json", body))
    code = next(iter(make_codes(gateway).genuine))
    form = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_NA}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": PLATFORM_BASIC}
    answer = await Driver(asyncio.get_running_loop(), platform, gateway).arequest(
        "POST", "/oidc/token", headers=headers, data=form
    )
    assert len(recorder.token_requests) == 1
    return answer


async def test_bug3_deeply_nested_upstream_answer_is_a_502(
    fuzz_gateway: Gateway, platform: aiohttp.ClientSession, recorder: RecordingUpstream
) -> None:
    answer = await _exchange_with_upstream_answer(fuzz_gateway, platform, recorder, b"[" * 3000 + b"]" * 3000)
    assert (answer.status, answer.json().get("error")) == (502, "server_error"), (answer.status, answer.body)


async def test_bug4_huge_integer_lifetime_is_not_a_500(
    fuzz_gateway: Gateway, platform: aiohttp.ClientSession, recorder: RecordingUpstream
) -> None:
    answer = await _exchange_with_upstream_answer(
        fuzz_gateway, platform, recorder, b'{"access_token":"at","expires_in":1' + b"0" * 400 + b"}"
    )
    assert answer.status == 200, (answer.status, answer.body)
    assert answer.json()["expires_in"] == 3600  # unusable lifetime -> expires_in_default, like NaN or a string


async def test_bug5_non_ascii_state_keeps_the_flow_cookie_under_4096_bytes(
    fuzz_gateway: Gateway, platform: aiohttp.ClientSession
) -> None:
    name = fuzz_gateway.config.cookie.name
    driver = Driver(asyncio.get_running_loop(), platform, fuzz_gateway)
    response = await driver.arequest("GET", fuzz_gateway.authorize_url("oidc", state="\u00e9" * 500)[len(fuzz_gateway.url) :])
    body = response.body
    cookie = set_cookie_of(response, name) or ""
    location = response.headers.get("Location", "")
    # Either refused (error redirect to Alexa with invalid_request) or a cookie browsers keep.
    if response.status == 302 and "error=invalid_request" in location:
        return
    assert response.status == 302 and cookie, body
    assert len(name) + 1 + len(cookie) <= 4096, f"flow cookie of {len(cookie)} bytes"


async def test_bug6_token_endpoint_answers_json_to_any_method(fuzz_gateway: Gateway, platform: aiohttp.ClientSession) -> None:
    async with platform.get(fuzz_gateway.endpoint("token"), allow_redirects=False) as response:
        assert response.status in (400, 405)
        assert response.content_type == "application/json", response.content_type
        assert response.headers.get("Cache-Control") == "no-store" and response.headers.get("Pragma") == "no-cache"
        assert (await response.json())["error"] == "invalid_request"
