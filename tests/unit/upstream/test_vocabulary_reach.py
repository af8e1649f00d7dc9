"""The vocabulary that reaches providers the core words could not: a refresh endpoint of its own, a
second exchange step, typed JSON parameters, ISO 8601 ``expires_at``, whole-origin kept values and
host tables (gateway/config/mapping.py, gateway/upstream/client.py, gateway/upstream/answer.py,
gateway/oauth/linkcontext.py). The end-to-end side is tests/e2e/test_providers.py (Figma, Instagram,
Threads, Zendesk, Square, Zoho) and tests/e2e/test_link_context.py (origins and host tables).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from textwrap import dedent

import pytest
from support.oauth import load_mapping, read_mapping

from gateway.config.templates import ContextValue, UnsafeUrl, render_url
from gateway.oauth.linkcontext import kept_at_callback
from gateway.oauth.responses import InvalidGrant, OAuthError, ServerError
from gateway.observe.trace import redact
from gateway.upstream.answer import UpstreamAnswer, normalise, token_to_exchange
from gateway.upstream.client import prepare_exchange_request, prepare_token_request
from gateway.upstream.examples import run_examples
from unit.oauth.test_linkcontext import problems_of, with_context
from unit.upstream.test_upstream_request import CALLBACK, code_exchange, provider, refresh

ZOHO = ContextValue("accounts_server", re.compile(r"https://accounts\.zoho\.(com|eu)"), param="accounts-server", url=True)
TABLE = ContextValue("location", re.compile("(?!)"), hosts={"us": "zoho.com", "eu": "zoho.eu"})


# -- a refresh endpoint of its own ---------------------------------------------------------------------
def test_a_refresh_goes_to_its_own_url_with_its_own_method(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("refresh: {url: 'https://api.example.com/refresh', method: GET}\n"))
    prepared = refresh(mapping)
    assert (prepared.method, prepared.url) == ("GET", "https://api.example.com/refresh")
    assert prepared.query["refresh_token"] == "the-rt" and prepared.form is None
    exchange = code_exchange(mapping)  # the code exchange is unchanged
    assert (exchange.method, exchange.url) == ("POST", "https://auth.example.com/token") and exchange.form is not None


def test_a_refresh_url_is_judged_like_any(tmp_path: Path) -> None:
    found = problems_of(tmp_path, with_context("", "url: https://a.example/t\nrefresh: {url: 'http://a.example/r'}"))
    assert any("upstream.token.refresh.url" in problem and "https" in problem for problem in found), found


# -- typed JSON parameters -----------------------------------------------------------------------------
def test_typed_parameters_keep_their_json_type_in_a_json_body(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("encoding: json\ntyped: {expires_in: 1800, offline: true, ratio: 0.5}\n"))
    prepared = code_exchange(mapping)
    assert prepared.json_body is not None
    assert prepared.json_body["expires_in"] == 1800 and type(prepared.json_body["expires_in"]) is int
    assert prepared.json_body["offline"] is True and prepared.json_body["ratio"] == 0.5
    assert prepared.json_body["code"] == "the-code"  # the rest as before
    # The refresh inherits them; an override replaces one by name.
    mapping = load_mapping(tmp_path, provider("encoding: json\ntyped: {expires_in: 1800}\nrefresh: {typed: {expires_in: 900}}\n"))
    assert refresh(mapping).json_body == {**(refresh(mapping).json_body or {}), "expires_in": 900}
    assert code_exchange(mapping).json_body is not None and code_exchange(mapping).json_body["expires_in"] == 1800  # type: ignore[index]


def test_typed_parameters_outside_json_are_their_json_text(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("typed: {expires_in: 1800, offline: true}\n"))
    prepared = code_exchange(mapping)
    assert prepared.form is not None and prepared.form["expires_in"] == "1800" and prepared.form["offline"] == "true"


@pytest.mark.parametrize("value", ["'1800'", "[1]", "{a: 1}", ".nan"])
def test_a_typed_parameter_is_a_number_or_a_boolean(tmp_path: Path, value: str) -> None:
    found = problems_of(tmp_path, with_context("", f"url: https://a.example/t\ntyped: {{expires_in: {value}}}"))
    assert len(found) == 1 and "upstream.token.typed.expires_in" in found[0], found


def test_a_typed_parameter_may_come_from_the_environment(tmp_path: Path) -> None:
    text = provider("encoding: json\ntyped: {expires_in: '${TOKEN_LIFETIME}'}\n")
    mapping = load_mapping(tmp_path, text, env={"TOKEN_LIFETIME": "1800"})
    assert code_exchange(mapping).json_body is not None and code_exchange(mapping).json_body["expires_in"] == 1800  # type: ignore[index]
    problems, _ = read_mapping(tmp_path, text, env={"TOKEN_LIFETIME": "half an hour"})
    assert [str(problem) for problem in problems.items if "typed.expires_in" in str(problem)], problems.items


def test_the_trace_shows_a_typed_value_as_text() -> None:
    shown = redact.shown_params({"expires_in": 1800, "offline": True})
    assert shown["expires_in"] == "1800" and shown["offline"] == redact.redact("true")


# -- ISO 8601 expires_at ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expires_at", "expected"),
    [
        ("2026-04-04T21:46:40Z", 3600),
        ("2026-04-04T23:46:40+02:00", 3600),  # the same moment in another zone
        ("2026-04-04T21:46:40", 3600),  # no zone: UTC
        ("2026-04-04T21:46:40.500Z", 3600),
        ("next tuesday", 2592000),  # not a date: the default
        (1775339200, 2592000),  # a number is not ISO 8601 text here
    ],
)
def test_expires_at_as_iso_8601(tmp_path: Path, expires_at: object, expected: int) -> None:
    mapping = load_mapping(tmp_path, provider() + "  answer: {expires_at_format: iso8601, expires_in_default: 2592000}\n")
    now = 1775335600.0  # 2026-04-04T20:46:40Z
    answer = UpstreamAnswer(200, "application/json", json.dumps({"access_token": "a", "expires_at": expires_at}).encode())
    assert normalise(answer, mapping.answer, now=now)["expires_in"] == expected


def test_epoch_expires_at_is_still_the_default(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider())
    answer = UpstreamAnswer(200, "application/json", b'{"access_token": "a", "expires_at": "2026-04-04T21:46:40Z"}')
    assert normalise(answer, mapping.answer, now=1775335600.0)["expires_in"] == 3600  # not read: the default


# -- a second exchange step --------------------------------------------------------------------------------
EXCHANGE = """\
exchange:
  url: https://graph.example.com/access_token
  method: GET
  token: "data[0].access_token || access_token"
  params:
    add: {grant_type: long_lived, client_secret: '{client_secret}', access_token: '{access_token}'}
"""


def test_the_exchange_step_starts_from_no_parameters(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider(EXCHANGE))
    first = code_exchange(mapping)
    assert first.exchange_values is not None and refresh(mapping).exchange_values is None
    second = prepare_exchange_request(mapping, first.exchange_values, "short-lived")
    assert (second.method, second.url) == ("GET", "https://graph.example.com/access_token")
    assert dict(second.query) == {"grant_type": "long_lived", "client_secret": "up-secret", "access_token": "short-lived"}
    assert "Authorization" not in second.headers


def test_the_exchange_step_can_authenticate_as_the_token_request_does(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider(EXCHANGE.replace("  method: GET\n", "  method: GET\n  client_auth: basic\n")))
    first = code_exchange(mapping)
    assert first.exchange_values is not None
    assert prepare_exchange_request(mapping, first.exchange_values, "t").headers["Authorization"].startswith("Basic ")


def test_the_token_to_trade_is_found_or_the_answer_is_an_error(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider(EXCHANGE))
    assert mapping.exchange is not None
    token = mapping.exchange.token

    def first(status: int, body: object) -> UpstreamAnswer:
        return UpstreamAnswer(status, "application/json", json.dumps(body).encode())

    assert token_to_exchange(first(200, {"data": [{"access_token": "wrapped"}]}), mapping.answer, token) == "wrapped"
    assert token_to_exchange(first(200, {"access_token": "bare"}), mapping.answer, token) == "bare"
    with pytest.raises(OAuthError) as refused:
        token_to_exchange(first(400, {"error": "invalid_grant"}), mapping.answer, token)
    assert refused.value.error == "invalid_grant"
    with pytest.raises(ServerError):
        token_to_exchange(first(200, {"user_id": "1"}), mapping.answer, token)


def test_an_exchange_placeholder_is_checked_and_access_token_is_not_a_context_name(tmp_path: Path) -> None:
    found = problems_of(tmp_path, with_context("", "url: https://a.example/t\nexchange: {url: 'https://a.example/x', params: {add: {a: '{nope}'}}}"))
    assert any("upstream.token.exchange.params.add.a" in problem for problem in found), found
    found = problems_of(tmp_path, with_context("callback: {keep: {access_token: {pattern: x}}}\n", "url: https://a.example/t"))
    assert any("can not be a context name" in problem for problem in found), found


def test_an_example_with_a_first_answer_needs_its_token(tmp_path: Path) -> None:
    text = provider(EXCHANGE) + dedent_examples(
        """\
        examples:
          - first: {"user_id": "1"}
            body: {"access_token": "long", "expires_in": 60}
            expect: {access_token: long, token_type: Bearer, expires_in: 60}
        """
    )
    failures = run_examples(load_mapping(tmp_path, text))
    assert len(failures) == 1 and "server_error" in failures[0], failures


def dedent_examples(text: str) -> str:
    return dedent(text)


# -- whole origins and host tables ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://accounts.zoho.eu", True),
        ("https://accounts.zoho.com", True),
        ("https://accounts.zoho.eu/evil", False),  # off the pattern (a path)
        ("https://accounts.zoho.eu.evil.example", False),
        ("https://x@accounts.zoho.eu", False),
        ("http://accounts.zoho.eu", False),
        ("", False),
    ],
)
def test_a_whole_origin_must_match_and_be_only_an_origin(value: str, ok: bool) -> None:
    template = "{accounts_server}/oauth/v2/token"
    if ok:
        assert render_url(template, {"accounts_server": value}, [ZOHO]) == value + "/oauth/v2/token"
    else:
        with pytest.raises(UnsafeUrl):
            render_url(template, {"accounts_server": value}, [ZOHO])


def test_only_a_url_value_may_start_a_url() -> None:
    for specs in ([], [TABLE], [ContextValue("accounts_server", re.compile(".+"))]):
        with pytest.raises(UnsafeUrl):
            render_url("{accounts_server}/token", {"accounts_server": "https://accounts.zoho.eu"}, specs)


def test_a_loose_origin_pattern_still_gets_only_an_https_origin() -> None:
    loose = ContextValue("origin", re.compile(r".+"), url=True)
    for value in ("https://a.example/p", "https://a.example?x", "ftp://a.example", "https://127.0.0.1", "https://localhost"):
        with pytest.raises(UnsafeUrl):
            render_url("{origin}/token", {"origin": value}, [loose])
    assert render_url("{origin}/token", {"origin": "https://a.example:8443"}, [loose]) == "https://a.example:8443/token"


def test_a_host_table_bounds_the_hosts_to_the_mapping(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        with_context(
            "callback: {keep: {location: {hosts: {us: zoho.com, eu: zoho.eu}}}}\n",
            "url: 'https://accounts.{location}/oauth/v2/token'",
        ),
    )
    prepared = prepare_token_request(mapping, grant_type="refresh_token", callback_url=CALLBACK, refresh_token="r", context={"location": "eu"})
    assert prepared.url == "https://accounts.zoho.eu/oauth/v2/token"
    assert kept_at_callback(mapping, {"location": "us"}, {}) == {"location": "us"}
    with pytest.raises(UnsafeUrl):
        kept_at_callback(mapping, {"location": "zoho.eu"}, {})  # a host, not a key of the table
    with pytest.raises(InvalidGrant):
        prepare_token_request(mapping, grant_type="refresh_token", callback_url=CALLBACK, refresh_token="r", context={"location": "cn"})
    assert TABLE.accepts("eu") and not TABLE.accepts("evil.example") and TABLE.fills("eu") == "zoho.eu"


def test_a_hyphenated_callback_parameter_is_kept_under_its_placeholder(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        with_context(
            "callback:\n  keep:\n    accounts-server: {placeholder: accounts_server, url: true, pattern: 'https://accounts\\.zoho\\.(com|eu)'}\n",
            "url: '{accounts_server}/oauth/v2/token'",
        ),
    )
    kept = kept_at_callback(mapping, {"accounts-server": "https://accounts.zoho.eu", "code": "c"}, {})
    assert kept == {"accounts_server": "https://accounts.zoho.eu"}
    prepared = prepare_token_request(mapping, grant_type="refresh_token", callback_url=CALLBACK, refresh_token="r", context=kept)
    assert prepared.url == "https://accounts.zoho.eu/oauth/v2/token" and prepared.public_only
    with pytest.raises(UnsafeUrl):
        kept_at_callback(mapping, {"accounts-server": "https://evil.example"}, {})


@pytest.mark.parametrize(
    ("context", "token", "message"),
    [
        ("callback: {keep: {o: {url: true, pattern: x}}}\n", "url: 'https://a.example/{o}'", "can only start the URL"),
        ("callback: {keep: {o: {pattern: x}}}\n", "url: '{o}/token'", "not a url: true value"),
        ("callback: {keep: {o: {url: true, pattern: x}}}\n", "url: '{o}token'", "a path must follow"),
        ("callback: {keep: {l: {hosts: {eu: 'zoho.eu/x'}}}}\n", "url: https://a.example/t", "is not a host name"),
        ("callback: {keep: {l: {url: true, hosts: {eu: zoho.eu}}}}\n", "url: https://a.example/t", "leave out url: true"),
        ("callback: {keep: {l: {allow_private: false}}}\n", "url: https://a.example/t", "pattern is required"),
        ("callback: {keep: {'a b': {placeholder: ab, pattern: x}}}\n", "url: https://a.example/t", "callback parameter's name"),
        ("callback: {keep: {a-b: {placeholder: 'a-b', pattern: x}}}\n", "url: https://a.example/t", "can not be a context name"),
    ],
)
def test_the_loader_says_what_is_wrong_with_an_origin_or_a_table(tmp_path: Path, context: str, token: str, message: str) -> None:
    found = problems_of(tmp_path, with_context(context, token))
    assert any(message in problem for problem in found), found
