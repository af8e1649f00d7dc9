"""``error_description`` keeps to RFC 6749 §5.2's character set (%x20-21 / %x23-5B / %x5D-7E).

The cleaner (gateway/oauth/responses.py) runs on every :class:`OAuthError`; the gateway's own
messages are written in the set to begin with ("RFC 6749 section 5.2", never the section sign).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.oauth.responses import InvalidGrant, OAuthError, clean_description
from gateway.web.render import token_error_response

SECTION_5_2 = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
PACKAGE = Path(__file__).resolve().parents[3] / "gateway"


@given(st.text())
def test_every_cleaned_description_is_in_the_set(text: str) -> None:
    cleaned = clean_description(text)
    assert SECTION_5_2.fullmatch(cleaned), repr(cleaned)
    assert clean_description(cleaned) == cleaned  # cleaning twice changes nothing (grace entries re-raise)


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\')))
def test_text_already_in_the_set_is_kept_as_is(text: str) -> None:
    assert clean_description(text) == text


def test_what_the_cleaner_does() -> None:
    assert clean_description("see RFC 6749 §5.2") == "see RFC 6749 section 5.2"
    assert clean_description("§ 4.1") == "section 4.1"
    assert clean_description('the "code" is bad') == "the 'code' is bad"
    assert clean_description("C:\\path") == "C:/path"
    assert clean_description("Zoë’s café") == "Zoe?s cafe"
    assert clean_description("line\nbreak\ttab\r\u2028") == "line break tab  "
    assert clean_description("秘密 ✓") == "?? ?"
    assert clean_description("ﬁne ①") == "fine 1"  # NFKD compatibility forms


def test_an_oauth_error_is_cleaned_wherever_it_is_rendered() -> None:
    err = InvalidGrant('upstream said: "Zoë’s grant §3 is gone"')
    assert err.description == "upstream said: 'Zoe?s grant section 3 is gone'" == str(err)
    assert err.as_dict()["error_description"] == err.description
    body = json.loads(token_error_response(err).text or "")
    assert SECTION_5_2.fullmatch(body["error_description"])


def _messages_outside_the_set() -> list[str]:
    """String constants in calls of OAuthError and its subclasses anywhere in the package."""
    names = {"OAuthError", *(cls.__name__ for cls in _subclasses(OAuthError))}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name not in names:
                continue
            for argument in [*node.args, *(keyword.value for keyword in node.keywords if keyword.arg == "description")]:
                for part in ast.walk(argument):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str) and not SECTION_5_2.fullmatch(part.value):
                        found.append(f"{path.relative_to(PACKAGE.parent)}:{part.lineno}: {part.value!r}")
    return found


def _subclasses(cls: type[OAuthError]) -> list[type[OAuthError]]:
    found: list[type[OAuthError]] = []
    for direct in cls.__subclasses__():
        found += [direct, *_subclasses(direct)]
    return found


def test_the_gateways_own_messages_are_written_in_the_set() -> None:
    """Cleaning is the safety net; the gateway's words say "section", not the section sign."""
    assert _messages_outside_the_set() == []


def test_every_failure_kind_has_a_sentence_and_is_in_the_metric_help() -> None:
    """One vocabulary (gateway/upstream/failure.py) for the record, the metric, the trace and linktest."""
    from gateway.observe.metrics import Metrics
    from gateway.observe.reasons import upstream_failure
    from gateway.upstream.failure import FAILURE_KINDS, as_failure_kind

    assert FAILURE_KINDS == ("timeout", "connection", "too_large", "http_5xx", "throttled", "refused", "unusable_answer")
    fallback = upstream_failure("no-such-kind")
    help_text = Metrics().upstream_failures._documentation
    for kind in FAILURE_KINDS:
        # unusable_answer's sentence is the general one (the trace says what the mapping could not read)
        assert upstream_failure(kind) != fallback or kind == "unusable_answer", kind
        assert kind in help_text
        assert as_failure_kind(kind) == kind
    assert as_failure_kind("Refused") is None and as_failure_kind(None) is None


def test_every_kind_is_declared_at_zero_for_each_provider() -> None:
    from prometheus_client import generate_latest

    from gateway.observe.metrics import Metrics
    from gateway.upstream.failure import FAILURE_KINDS

    metrics = Metrics()
    metrics.declare(["oidc", "github"])
    text = generate_latest(metrics.registry).decode()
    for provider in ("oidc", "github"):
        for kind in FAILURE_KINDS:
            assert f'gateway_upstream_failures_total{{kind="{kind}",provider="{provider}"}} 0.0' in text
