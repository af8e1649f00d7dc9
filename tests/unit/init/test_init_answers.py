"""``gateway init``'s inference over the documented answers of every shipped mapping, and over the
forms providers answer in (format, root, field names, expiry forms, scope forms, token_type, errors).

For each mapping in mappings/, its ``examples:`` bodies are given to the inference as the operator
gives files to ``gateway init``: the code-exchange answers as ``--answer``, the refresh answers as
``--refresh-answer``, the errors as ``--error-answer`` with their status. Two things are checked:

- the mapping init writes from them loads and its own examples give what they expect (what
  ``gateway check`` runs), for every shipped mapping;
- the shipped mapping's examples, run under the inferred answer rules, give the shipped
  expectations: the answer section is reproduced. Where it is not, the test is an xfail whose
  reason says what init gets wrong, so a better inference shows as an unexpected pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli.init import check_mapping
from gateway.config.extends import load_mapping_document
from gateway.config.models import AnswerFile
from gateway.config.yamlfile import Problems
from gateway.init import answers
from gateway.init.answers import InferenceError, infer_answer
from gateway.init.draft import answer_mapping, build_draft
from gateway.init.samples import Role, Sample, parse_sample
from gateway.upstream.examples import run_examples

MAPPINGS = sorted((Path(__file__).resolve().parents[3] / "mappings").glob("*.yaml"))

#: The shipped mappings whose answer section init does not reproduce from their examples, and why.
NOT_INFERRED = {
    "salesforce": "the lifetime (7200 s, the connected app's session timeout) is documented, in no answer: init answers an hour",
    "shopify": "an offline token has no lifetime and no refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "todoist": "a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "strava": "errors[0].code is 'invalid' for a bad code and a bad client id alike: the mapping joins resource.field.code, init maps 'invalid' once (invalid_grant)",
    "withings": "status 2554 'Wrong action or wrong webservice' has no word init knows: it guesses invalid_grant, the mapping says invalid_request (the gateway's own fault, 502)",
    "x": "a bad code comes as invalid_request: the mapping reads invalid_grant from the description's words; init keeps the RFC code (502)",
    "zoom": "a bad code comes as invalid_request: the mapping reads invalid_grant from the reason's words; init keeps the RFC code (502)",
    "acuity": "a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "aircall": "a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "clickup": "a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "vimeo": "a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "wordpress": "a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "homeassistant": "a bad code comes as invalid_request 'Invalid code': the mapping reads invalid_grant from it; init keeps the RFC code (502)",
    "sonos": "a dead refresh token comes as invalid_request: the mapping maps invalid_request to invalid_grant; init keeps the RFC code (502)",
    "hue": "two answer shapes name the lifetime differently (expires_in, access_token_expires_in): the mapping reads either, init the one most samples use",
    "eventbrite": "a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "webflow": "a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
    "dropbox-sign": "the error code is nested (error.error_name, beside error.error_msg): init looks for a code at the top level and reads a 400 without one as the gateway's fault (502)",
}
if "expires_at_format" not in AnswerFile.model_fields:  # until the vocabulary reads ISO-8601 expiry times
    NOT_INFERRED["square"] = "expires_at is ISO-8601 text, which the normaliser does not read: init notes it and answers an hour, the mapping the documented 30 days"
else:  # the mappings (and the zendesk change) that came with it
    NOT_INFERRED.update(
        zendesk="a token without lifetime or refresh token: init answers ten years, the mapping leaves expires_in out (expires_in_default: null)",
        instagram="the long-lived token is also the refresh token and its lifetime is the mapping's (token.exchange): no answer says so",
        threads="the long-lived token is also the refresh token and its lifetime is the mapping's (token.exchange): no answer says so",
    )


def _samples(examples: list[dict[str, Any]]) -> list[Sample]:
    samples = []
    for example in examples:
        body = example["body"]
        role: Role = "error" if "error" in example["expect"] else "refresh" if example.get("grant") == "refresh_token" else "token"
        samples.append(
            parse_sample(
                body if isinstance(body, str) else json.dumps(body), role, status=example.get("status", 200),
                content_type=example.get("content_type"), name=example.get("name"), now=example.get("now"),
            )
        )
    return samples


def _shipped(path: Path) -> dict[str, Any]:
    """The mapping as the gateway reads it: a variant (``extends:``) with its base's examples."""
    problems = Problems()
    document: dict[str, Any] = dict(load_mapping_document(path, problems, env={}, missing_env_ok=True))
    assert not problems, "\n".join(map(str, problems.items))
    return document


@pytest.mark.parametrize("path", MAPPINGS, ids=[p.stem for p in MAPPINGS])
def test_the_mapping_init_writes_from_the_documented_answers_checks_clean(path: Path, tmp_path: Path) -> None:
    draft = build_draft(
        path.stem, samples=_samples(_shipped(path)["examples"]),
        authorize_url="https://provider.example/authorize", token_url="https://provider.example/token",
    )
    written = tmp_path / f"{path.stem}.yaml"
    written.write_text(draft.text(), encoding="utf-8")
    assert check_mapping(written) == []
    assert len(yaml.safe_load(written.read_text())["examples"]) == len(_shipped(path)["examples"])


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=NOT_INFERRED[p.stem], strict=True)) if p.stem in NOT_INFERRED else p
        for p in MAPPINGS
    ],
    ids=[p.stem for p in MAPPINGS],
)
def test_the_answer_section_is_reproduced_from_the_examples_alone(path: Path) -> None:
    document = _shipped(path)
    inferred = infer_answer(_samples(document["examples"]))
    mapping = answer_mapping(inferred, document["examples"], inferred.scope_separator or " ")
    assert run_examples(mapping) == []


def test_most_answer_sections_are_reproduced() -> None:
    assert len([p for p in MAPPINGS if p.stem not in NOT_INFERRED]) >= 33


# -- the forms, one at a time ---------------------------------------------------------------------------
def _one(body: Any, role: str = "token", **options: Any) -> Sample:
    return parse_sample(body if isinstance(body, str) else json.dumps(body), role, **options)  # type: ignore[arg-type]


def _result(samples: list[Sample]) -> tuple[answers.AnswerDraft, list[dict[str, Any]]]:
    """The inferred section and what the mapping init writes gives for each sample."""
    draft = build_draft("acme", samples=samples, authorize_url="https://a.example/a", token_url="https://a.example/t", now=1_700_000_000)
    return infer_answer(samples), [example["expect"] for example in draft.document["examples"]]


def test_nested_camel_case_text_lifetime_and_a_scope_list() -> None:
    body = {"code": 0, "result": {"accessToken": "at", "refreshToken": "rt", "expiresIn": "3600", "scopes": ["read", "write"]}}
    inferred, expects = _result([_one(body)])
    assert inferred.answer["root"] == "result"
    assert inferred.answer["fields"] == {"access_token": "accessToken", "refresh_token": "refreshToken", "expires_in": "expiresIn", "scope": "scopes"}
    assert expects == [{"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt", "scope": "read write"}]
    assert "text" in inferred.notes[("upstream", "answer", "format")]


@pytest.mark.parametrize(
    ("body", "fields", "expires_in"),
    [
        ({"access_token": "a", "refresh_token": "r", "expires_at": 1_700_000_000_000 + 7_200_000}, {}, 7200),  # milliseconds
        ({"access_token": "a", "refresh_token": "r", "expires_on": "1700000600"}, {"expires_at": "expires_on"}, 600),
        ({"access_token": "a", "refresh_token": "r", "expires_in": 1_700_000_900}, {"expires_at": "expires_in", "expires_in": "`null`"}, 900),
        ({"access_token": "a", "refresh_token": "r", "expires": 5183999}, {}, 5183999),  # Facebook's relative `expires`
        ({"access_token": "a", "refresh_token": "r", "ttl_expiry": 60, "expiry": 120}, {"expires_in": "expiry"}, 120),
    ],
)
def test_the_lifetime_forms(body: dict[str, Any], fields: dict[str, str], expires_in: int) -> None:
    inferred, expects = _result([_one(body)])
    assert inferred.answer.get("fields", {}) == fields
    assert expects[0]["expires_in"] == expires_in


def test_an_iso_8601_expiry_is_read_where_the_vocabulary_reads_it_else_noted() -> None:
    inferred = infer_answer([_one({"access_token": "a", "refresh_token": "r", "expiry": "2026-04-04T21:46:40Z"})])
    if "expires_at_format" in AnswerFile.model_fields:
        assert inferred.absolute_expiry and inferred.answer["fields"] == {"expires_at": "expiry"}
        assert inferred.answer["expires_at_format"] == "iso8601" and "expires_in_default" not in inferred.answer
    else:
        assert inferred.answer["expires_in_default"] == 3600 and not inferred.absolute_expiry
        assert "ISO-8601" in inferred.notes[("upstream", "answer", "expires_in_default")]
        assert "iso8601" not in answers.ABSOLUTE_FORMS


def test_no_lifetime_no_refresh_token_is_ten_years_and_with_one_an_hour() -> None:
    assert infer_answer([_one({"access_token": "a"})]).answer["expires_in_default"] == 315360000
    assert infer_answer([_one({"access_token": "a", "refresh_token": "r"})]).answer["expires_in_default"] == 3600


@pytest.mark.parametrize(
    ("scope", "separator", "noted"),
    [
        ("a,b", ",", False), ("a, b", ",", False), ("a b", None, False), ("a", None, True), ("a;b", ";", False),
        ("https://x.example/a https://x.example/b", None, False), ("read:user|repo", "|", False),
    ],
)
def test_the_scope_separator(scope: str, separator: str | None, noted: bool) -> None:
    inferred = infer_answer([_one({"access_token": "a", "scope": scope})])
    assert inferred.scope_separator == separator
    assert (("upstream", "scope_separator") in inferred.notes) is noted


def test_token_type_spelled_otherwise_is_noted() -> None:
    assert "case-insensitive" in infer_answer([_one({"access_token": "a", "token_type": "bearer"})]).notes[("upstream", "answer", "format")]
    assert "bearer token" in infer_answer([_one({"access_token": "a", "token_type": "mac"})]).notes[("upstream", "answer", "format")]
    assert ("upstream", "answer", "format") not in infer_answer([_one({"access_token": "a", "token_type": "Bearer"})]).notes


def test_a_form_answer_and_an_http_dump() -> None:
    form = _one("access_token=gho_1&scope=repo%2Cgist&token_type=bearer")
    assert form.format == "form" and form.content_type == "application/x-www-form-urlencoded"
    inferred, expects = _result([form])
    assert inferred.answer["format"] == "auto" and inferred.scope_separator == ","
    assert expects[0]["scope"] == "repo gist"
    dump = _one('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{"error": "invalid_client"}', "error")
    assert (dump.status, dump.content_type, dump.document) == (401, "application/json; charset=utf-8", {"error": "invalid_client"})


def test_errors_with_http_200() -> None:
    ok = _one({"ok": True, "access_token": "a"})
    slack = infer_answer([ok, _one({"ok": False, "error": "invalid_code"}, "error", status=200)])
    assert slack.answer["error"] == {"when": "ok == `false`", "description": "error", "map": {"invalid_code": "invalid_grant"}}
    status = infer_answer([_one({"status": 0, "body": {"access_token": "a"}}), _one({"status": 601, "error": "Too Many Request"}, "error", status=200)])
    assert status.answer["error"] == {"when": "status != `0`", "code": "to_string(status)", "description": "error", "map": {"601": "temporarily_unavailable"}}
    github = infer_answer([_one({"access_token": "a"}), _one({"error": "bad_verification_code"}, "error", status=200)])
    assert "when" not in github.answer["error"]  # an error and no token: the normaliser's own rule
    only = infer_answer([_one({"access_token": "a"}), _one({"fault": "expired", "access_token": ""}, "error", status=200)])
    assert only.answer["error"]["when"] == "fault != null"


@pytest.mark.parametrize(
    ("code", "text", "status", "expected"),
    [
        ("ratelimited", "", 429, "temporarily_unavailable"),
        ("bad_client_secret", "", 200, "invalid_client"),
        ("invalid_grant_type", "", 400, "unsupported_grant_type"),
        ("bad_redirect_uri", "", 400, "invalid_request"),
        ("401", "Unauthorized", 401, "invalid_client"),
        ("authorization_expired", "The authorization grant has expired.", 401, "invalid_grant"),
        ("E42", "nothing said", 400, "invalid_grant"),
    ],
)
def test_error_codes_are_guessed_from_status_and_words(code: str, text: str, status: int, expected: str) -> None:
    assert answers.guess_error(code, text, status)[0] == expected


def test_an_answer_without_a_token_is_refused() -> None:
    with pytest.raises(InferenceError, match="no access token"):
        infer_answer([_one({"error": "invalid_grant"})])
    with pytest.raises(ValueError, match="status 400"):
        _one('HTTP/1.1 400 Bad Request\n\n{"error": "invalid_grant"}')


def test_the_notes_are_comments_at_their_lines() -> None:
    samples = [_one({"ok": True, "authed_user": {"access_token": "x", "scope": "a"}}), _one({"ok": False, "error": "ratelimited"}, "error", status=200)]
    text = build_draft("acme", samples=samples, authorize_url="https://a.example/a", token_url="https://a.example/t").text()
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if "#" in line and not line.startswith("#")}
    assert "ok: false" in lines["when"]
    assert "'ratelimit'" in lines["ratelimited"]
    assert "a space" in lines["scope_separator"]
