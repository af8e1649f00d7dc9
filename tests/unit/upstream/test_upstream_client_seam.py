"""``send`` classifies what the upstream did, in-process: the recording upstream's client
(:meth:`support.upstream.RecordingUpstream.client`, in the spirit of httpx's ``MockTransport``)
answers as the server would, so no socket, port or server is needed.

The e2e fault matrix (tests/e2e/test_fault_matrix.py) checks the same classes over real TCP,
against the same recording upstream; these cases pin the classification itself and what ``send``
hands the client."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from support.oauth import load_mapping
from support.upstream import RecordingUpstream, Reply

from gateway.oauth.responses import OAuthError, ServerError, TemporarilyUnavailable
from gateway.upstream.answer import MAX_ANSWER_BYTES, UpstreamAnswer, normalise
from gateway.upstream.client import PreparedRequest, TooLarge, Unreachable, send


def answering(reply: Reply) -> RecordingUpstream:
    """An upstream (never started: only its in-process client is used) whose token endpoint answers ``reply``."""
    upstream = RecordingUpstream()
    upstream.fault = reply
    return upstream


#: A plain mapping: the default answer rules (RFC 6749 §5.1 / §5.2).
MAPPING = """\
platform: {profile: alexa, client_id: alexa, client_secret: alexa-secret}
upstream:
  client_id: up
  client_secret: up-secret
  authorize: {url: "https://upstream.test/authorize"}
  token: {url: "https://upstream.test/token"}
"""

GOOD = Reply(content_type="application/json", body=b'{"access_token": "at", "token_type": "bearer"}')


FORM = PreparedRequest("POST", "http://upstream.test/token", {}, {"Authorization": "Basic eA=="},
                       {"grant_type": "authorization_code", "code": "c 1"}, None, None)


async def test_a_good_answer_is_read_whole_and_the_request_is_sent_once() -> None:
    upstream = answering(Reply(content_type="application/json", body=b'{"access_token": "at"}', chunks=2))
    answer = await send(upstream.client(), FORM, default_timeout=4.0)
    assert answer == UpstreamAnswer(200, "application/json", b'{"access_token": "at"}')
    sent = upstream.only("/token")
    assert sent.call is not None
    assert (sent.method, sent.host, sent.path, sent.query) == ("POST", "upstream.test", "/token", {})
    assert sent.call.params is None
    assert sent.body == b"grant_type=authorization_code&code=c+1"
    assert sent.headers == {"authorization": "Basic eA==", "content-type": "application/x-www-form-urlencoded"}
    assert answer.status == 200 and 0 <= answer.seconds < 4.0, "send says what it measured"


async def test_a_json_body_and_the_mappings_own_timeout() -> None:
    upstream = answering(GOOD)
    request = PreparedRequest("POST", "http://upstream.test/token", {"a": "b"}, {}, None, {"code": "c"}, 9.5)
    await send(upstream.client(), request, default_timeout=4.0)
    sent = upstream.only("/token")
    assert sent.json() == {"code": "c"} and sent.content_type == "application/json"
    assert sent.call is not None and sent.call.params == {"a": "b"}
    assert sent.query == {"a": "b"}


async def test_the_mappings_own_timeout_is_the_deadline_even_when_longer_than_the_default() -> None:
    request = PreparedRequest("POST", "http://upstream.test/token", {}, {}, {"code": "c"}, None, 2.0)
    answer = await send(answering(Reply(delay=0.2, content_type="application/json", body=b'{"access_token": "at"}')).client(), request, default_timeout=0.05)
    assert answer.status == 200
    short = PreparedRequest("POST", "http://upstream.test/token", {}, {}, {"code": "c"}, None, 0.05)
    with pytest.raises(TemporarilyUnavailable, match="within 0.05s"):
        await send(answering(Reply(delay=2.0)).client(), short, default_timeout=4.0)


async def test_a_query_encoded_request_has_no_body_and_no_invented_content_type() -> None:
    upstream = answering(GOOD)
    request = PreparedRequest("POST", "http://upstream.test/token", {"code": "c"}, {}, None, None, None)
    await send(upstream.client(), request, default_timeout=4.0)
    sent = upstream.only("/token")
    assert (sent.body, sent.query) == (b"", {"code": "c"})
    assert "content-type" not in sent.headers


@pytest.mark.parametrize("disconnect", ["refuse", "before_headers", "mid_body"])
async def test_connection_failures_are_temporarily_unavailable(disconnect: Literal["refuse", "before_headers", "mid_body"]) -> None:
    upstream = answering(Reply(status=200, content_type="application/json", body=b'{"access_token": "at"}', disconnect=disconnect))
    with pytest.raises(Unreachable, match="could not be reached") as raised:
        await send(upstream.client(), FORM, default_timeout=4.0)
    assert isinstance(raised.value, TemporarilyUnavailable) and raised.value.failure == "connection" and raised.value.seconds >= 0
    assert len(upstream.token_requests) == 1  # sent once: no retry


@pytest.mark.parametrize("reply", [Reply(hang=True), Reply(delay=5.0), Reply(body=b'{"access_token": "at"}', chunks=2, stall=5.0)],
                         ids=["hang", "slow-headers", "stalled-body"])
async def test_an_upstream_that_does_not_answer_in_time_times_out_at_the_deadline(reply: Reply) -> None:
    upstream = answering(reply)
    try:
        with pytest.raises(Unreachable, match="within 0.05s") as raised:
            await send(upstream.client(), FORM, default_timeout=0.05)
    finally:
        await upstream.stop()  # releases nothing here (the deadline cancelled the wait), but stops cleanly
    assert isinstance(raised.value, TemporarilyUnavailable) and raised.value.failure == "timeout" and raised.value.seconds >= 0.05


async def test_a_non_transient_answer_over_64_kib_is_refused() -> None:
    big = Reply(content_type="application/json", body=b"x" * (MAX_ANSWER_BYTES + 1), chunks=2)
    with pytest.raises(TooLarge, match="64 KiB") as raised:
        await send(answering(big).client(), FORM, default_timeout=4.0)
    assert isinstance(raised.value, ServerError) and raised.value.failure == "too_large"


async def test_exactly_64_kib_is_read() -> None:
    answer = await send(answering(Reply(body=b"x" * MAX_ANSWER_BYTES)).client(), FORM, default_timeout=4.0)
    assert len(answer.body) == MAX_ANSWER_BYTES


@pytest.mark.parametrize("status", [429, 503])
async def test_a_large_outage_page_keeps_only_its_status(status: int) -> None:
    page = Reply(status=status, content_type="text/html", body=b"<html>" + b"x" * MAX_ANSWER_BYTES)
    answer = await send(answering(page).client(), FORM, default_timeout=4.0)
    assert (answer.status, answer.body) == (status, b"")


# -- what the answer amounts to: send, then the mapping's answer rules, still without a socket ----------

#: Outages and rate limits as proxies and providers send them (tests/e2e/test_link_edge_cases.py has the
#: same over TCP through the whole gateway): "try again later", never a bad grant.
TRANSIENT = [
    pytest.param(Reply(status=status, content_type="text/html",
                       body="<html><body><h1>Internal Server Error</h1><p>error=invalid_grant</p></body></html>"),
                 id=f"outage-page-{status}")
    for status in (500, 502, 503, 504)
] + [
    pytest.param(Reply(status=429, body={"message": "API rate limit exceeded"}, headers={"Retry-After": "30"}), id="429-json-no-code"),
    pytest.param(Reply(status=429, body={"error": "rate_limited"}, headers={"Retry-After": "30"}), id="429-json-non-rfc-code"),
    pytest.param(Reply(status=429, body={"error": "invalid_grant"}), id="429-says-invalid-grant"),
    pytest.param(Reply(status=429, content_type="text/html", body="<html><h1>429 Too Many Requests</h1></html>"), id="429-html"),
]


@pytest.mark.parametrize("reply", TRANSIENT)
async def test_an_outage_or_a_rate_limit_is_temporarily_unavailable(tmp_path: Path, reply: Reply) -> None:
    rules = load_mapping(tmp_path, MAPPING).answer
    answer = await send(answering(reply).client(), FORM, default_timeout=4.0)
    with pytest.raises(TemporarilyUnavailable):
        normalise(answer, rules)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(status=400, body={"error": "invalid_grant"}), "invalid_grant"),
        (Reply(status=400, body={"error": "some_vendor_code"}), "invalid_grant"),  # unknown: the grant is bad
        (Reply(status=401, body={"error": "invalid_client"}), "server_error"),  # the gateway's own credentials
        (Reply(status=403, content_type="text/html", body="<html>Forbidden</html>"), "server_error"),  # no code at all
        (Reply(status=302, headers={"Location": "https://login.example"}), "server_error"),  # never a token answer
    ],
    ids=["invalid-grant", "unknown-code", "invalid-client", "firewall-page", "redirect"],
)
async def test_a_refusal_is_classified_by_its_code(tmp_path: Path, reply: Reply, error: str) -> None:
    rules = load_mapping(tmp_path, MAPPING).answer
    answer = await send(answering(reply).client(), FORM, default_timeout=4.0)
    with pytest.raises(OAuthError) as raised:
        normalise(answer, rules)
    assert raised.value.error == error


async def test_a_good_answer_is_a_bearer_token(tmp_path: Path) -> None:
    rules = load_mapping(tmp_path, MAPPING).answer
    reply = Reply(body={"access_token": "at", "token_type": "bearer", "expires_in": "3600", "refresh_token": "rt"})
    answer = await send(answering(reply).client(), FORM, default_timeout=4.0)
    assert normalise(answer, rules) == {"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt"}
