"""Answer normalising, table-driven from the documented provider cases in shared/providers.md.

Each case: the ``upstream.answer`` rules a mapping would write, the upstream's documented answer
(status, content type, body), and the RFC 6749 answer the platform must get. The rules are parsed
by the real loader, so a case also proves the vocabulary can say it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.oauth import load_mapping

from gateway.config.mapping import AnswerRules
from gateway.oauth.responses import OAuthError
from gateway.upstream.answer import UpstreamAnswer, _expires_in, normalise

NOW = 1_764_000_000  # the clock for absolute expires_at

MAPPING = """\
platform: {{profile: alexa, client_id: alexa, client_secret: alexa-secret}}
upstream:
  client_id: up
  scope_separator: "{separator}"
  authorize: {{url: "https://provider.example/authorize"}}
  token: {{url: "https://provider.example/token"}}
  answer:
{answer}
"""


def rules(tmp_path: Path, answer: str = "{}", separator: str = " ") -> AnswerRules:
    indented = "\n".join("    " + line for line in answer.splitlines()) or "    {}"
    return load_mapping(tmp_path, MAPPING.format(answer=indented, separator=separator), name="p").answer


def answer(body: Any, status: int = 200, content_type: str = "application/json") -> UpstreamAnswer:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return UpstreamAnswer(status, content_type, raw)


SUCCESS: list[tuple[str, str, str, UpstreamAnswer, dict[str, Any]]] = [
    (
        "github-form-answer",
        "format: auto",
        ",",
        answer("access_token=gho_abc&scope=repo%2Cgist&token_type=bearer", content_type="application/x-www-form-urlencoded"),
        {"access_token": "gho_abc", "token_type": "Bearer", "expires_in": 3600, "scope": "repo gist"},
    ),
    (
        "facebook-text-plain-expires",
        "format: auto",
        " ",
        answer("access_token=EAAB&expires=5183999", content_type="text/plain"),
        {"access_token": "EAAB", "token_type": "Bearer", "expires_in": 5183999},
    ),
    (
        "login-with-amazon-string-expires-in-lowercase-bearer",
        "{}",
        " ",
        answer({"access_token": "Atza|x", "refresh_token": "Atzr|y", "token_type": "bearer", "expires_in": "3600"}),
        {"access_token": "Atza|x", "refresh_token": "Atzr|y", "token_type": "Bearer", "expires_in": 3600},
    ),
    (
        "withings-nested-body",
        "root: body\nerror: {when: 'status != `0`'}",
        ",",
        answer({"status": 0, "body": {"userid": 1, "access_token": "w-at", "refresh_token": "w-rt", "expires_in": 10800,
                                      "scope": "user.info,user.metrics", "token_type": "Bearer"}}),
        {"access_token": "w-at", "refresh_token": "w-rt", "token_type": "Bearer", "expires_in": 10800, "scope": "user.info user.metrics"},
    ),
    (
        "strava-absolute-expires-at",
        "fields: {expires_in: 'null'}",
        ",",
        answer({"token_type": "Bearer", "expires_at": NOW + 21600, "expires_in": 21600, "refresh_token": "s-rt",
                "access_token": "s-at", "athlete": {"id": 1}}),
        {"access_token": "s-at", "refresh_token": "s-rt", "token_type": "Bearer", "expires_in": 21600},
    ),
    (
        "slack-v2-bot-token-type",
        "error: {when: 'ok == `false`'}",
        ",",
        answer({"ok": True, "access_token": "xoxb-1", "token_type": "bot", "scope": "commands,incoming-webhook",
                "authed_user": {"id": "U1", "access_token": "xoxp-1", "token_type": "user"}}),
        {"access_token": "xoxb-1", "token_type": "Bearer", "expires_in": 3600, "scope": "commands incoming-webhook"},
    ),
    (
        "slack-user-token-via-fields",
        "error: {when: 'ok == `false`'}\nfields: {access_token: authed_user.access_token, scope: authed_user.scope}",
        ",",
        answer({"ok": True, "access_token": "xoxb-1", "token_type": "bot",
                "authed_user": {"id": "U1", "scope": "identify", "access_token": "xoxp-1", "token_type": "user"}}),
        {"access_token": "xoxp-1", "token_type": "Bearer", "expires_in": 3600, "scope": "identify"},
    ),
    (
        "salesforce-no-expires-in-uses-default",
        "expires_in_default: 7200",
        " ",
        answer({"access_token": "00D", "instance_url": "https://x.my.salesforce.com", "issued_at": "1278448832702",
                "signature": "sig", "token_type": "Bearer"}),
        {"access_token": "00D", "token_type": "Bearer", "expires_in": 7200},
    ),
    (
        "plentymarkets-camel-case",
        "fields: {access_token: accessToken, refresh_token: refreshToken, expires_in: expiresIn}",
        " ",
        answer({"accessToken": "pm-at", "refreshToken": "pm-rt", "expiresIn": 86400, "tokenType": "Bearer"}),
        {"access_token": "pm-at", "refresh_token": "pm-rt", "token_type": "Bearer", "expires_in": 86400},
    ),
    (
        "netatmo-scope-array",
        "{}",
        " ",
        answer({"access_token": "n-at", "refresh_token": "n-rt", "scope": ["read_station", "read_thermostat"],
                "expires_in": 10800, "expire_in": 10800}),
        {"access_token": "n-at", "refresh_token": "n-rt", "token_type": "Bearer", "expires_in": 10800,
         "scope": "read_station read_thermostat"},
    ),
    (
        "mailchimp-null-scope-zero-expires-falls-back",
        "expires_in_default: 315360000",
        " ",
        answer({"access_token": "mc-at", "expires_in": 0, "scope": None}),
        {"access_token": "mc-at", "token_type": "Bearer", "expires_in": 315360000},
    ),
    (
        "ebay-odd-token-type",
        "{}",
        " ",
        answer({"access_token": "v^1.1", "expires_in": 7200, "refresh_token": "v^1.1r", "token_type": "User Access Token"}),
        {"access_token": "v^1.1", "refresh_token": "v^1.1r", "token_type": "Bearer", "expires_in": 7200},
    ),
]


@pytest.mark.parametrize(("case", "answer_rules", "separator", "upstream", "expected"), SUCCESS, ids=[c[0] for c in SUCCESS])
def test_success_answers(
    tmp_path: Path, case: str, answer_rules: str, separator: str, upstream: UpstreamAnswer, expected: dict[str, Any]
) -> None:
    assert normalise(upstream, rules(tmp_path, answer_rules, separator), now=NOW) == expected


ERRORS: list[tuple[str, str, UpstreamAnswer, str, int]] = [
    ("slack-ok-false-with-200", "error: {when: 'ok == `false`', map: {invalid_code: invalid_grant}}",
     answer({"ok": False, "error": "invalid_code"}), "invalid_grant", 400),
    ("withings-non-zero-status-with-200", "root: body\nerror: {when: 'status != `0`', code: error}",
     answer({"status": 503, "error": "Invalid Params: invalid code"}), "invalid_grant", 400),
    ("github-bad-verification-code-with-200", "error: {when: 'error != null', map: {bad_verification_code: invalid_grant}}",
     answer({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}), "invalid_grant", 400),
    ("fitbit-errors-array", "error: {when: 'success == `false`', code: 'errors[0].errorType', description: 'errors[0].message'}",
     answer({"errors": [{"errorType": "invalid_grant", "message": "Authorization code invalid"}], "success": False}, 400),
     "invalid_grant", 400),
    ("ecobee-non-standard-401", "error: {map: {authorization_expired: invalid_grant}}",
     answer({"error": "authorization_expired", "error_description": "The authorization has expired."}, 401), "invalid_grant", 400),
    ("standard-invalid-grant", "{}", answer({"error": "invalid_grant"}, 400), "invalid_grant", 400),
    ("upstream-refuses-the-gateways-credentials", "{}", answer({"error": "invalid_client"}, 401), "server_error", 502),
    ("upstream-outage-html", "{}", answer("<html>502 Bad Gateway</html>", 502, "text/html"), "temporarily_unavailable", 503),
    ("upstream-rate-limited", "{}", answer({"message": "slow down"}, 429), "temporarily_unavailable", 503),
    ("no-access-token", "{}", answer({"token_type": "bearer"}), "server_error", 502),
    ("not-json-not-form", "format: json", answer("<<<", 200, "text/html"), "server_error", 502),
]


@pytest.mark.parametrize(("case", "answer_rules", "upstream", "error", "status"), ERRORS, ids=[c[0] for c in ERRORS])
def test_error_answers(tmp_path: Path, case: str, answer_rules: str, upstream: UpstreamAnswer, error: str, status: int) -> None:
    with pytest.raises(OAuthError) as caught:
        normalise(upstream, rules(tmp_path, answer_rules))
    assert (caught.value.error, caught.value.status) == (error, status)


def test_refresh_without_a_new_refresh_token(tmp_path: Path) -> None:
    """Spotify may omit refresh_token on refresh: omitted (Alexa keeps its own) unless kept."""
    upstream = answer({"access_token": "sp-at", "token_type": "Bearer", "expires_in": 3600})
    assert "refresh_token" not in normalise(upstream, rules(tmp_path), refresh_token_sent="old-rt")
    kept = normalise(upstream, rules(tmp_path), refresh_token_sent="old-rt", keep_refresh_token=True)
    assert kept["refresh_token"] == "old-rt"


def test_expires_at_in_milliseconds(tmp_path: Path) -> None:
    upstream = answer({"access_token": "a", "expires_at": (NOW + 600) * 1000})
    assert normalise(upstream, rules(tmp_path, "fields: {expires_in: 'null'}"), now=NOW)["expires_in"] == 600


@pytest.mark.parametrize("lifetime", [1, 3600, 2**53 - 1, 2**53, 2**60 + 1, 0, -5, True, 3600.7, "3600"])
def test_an_integer_expires_in_reads_as_the_general_rule_reads_it(tmp_path: Path, lifetime: Any) -> None:
    """A positive integer below 2**53 is taken as it is (most answers); the rest go the general way
    (``max(1, int(float(value)))``, or the default): both give what the general way gives."""
    answer_rules = rules(tmp_path)
    body = json.dumps({"access_token": "at", "expires_in": lifetime}).encode()
    result = normalise(UpstreamAnswer(200, "application/json", body), answer_rules)
    document = json.loads(body)
    assert result.get("expires_in") == _expires_in({"expires_in": document["expires_in"]}, answer_rules, 0.0)
