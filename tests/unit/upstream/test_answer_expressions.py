"""Answer expressions: plain names read by ``dict.get`` give what JMESPath gives; an expression
that fails at run time is logged and counted, and a failing ``error.when`` is never "no error"."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jmespath
import pytest

from gateway.oauth.responses import ServerError
from gateway.observe.metrics import Metrics
from gateway.upstream import answer as answer_module
from gateway.upstream.answer import ExpressionFailed, normalise
from unit.upstream.test_answer import answer, rules


@pytest.mark.parametrize("document", [{"a": 1}, {"a": None}, {"b": 2}, [], [{"a": 1}], "text", 3, None, {"a": {"b": [1]}}])
def test_a_plain_name_reads_what_jmespath_reads(document: Any) -> None:
    expression = jmespath.compile("a")
    assert expression.parsed["type"] == "field"
    assert answer_module._search(expression, document, "a", None) == expression.search(document)


@pytest.mark.parametrize("source", ["a.b", "a.b[0]", "length(a.b)", "a || `5`", "[?x > `1`]"])
def test_other_expressions_share_one_interpreter_and_read_the_same(source: str) -> None:
    expression = jmespath.compile(source)
    for document in ({"a": {"b": [7]}}, [{"x": 2}, {"x": 0}], {"a": None}):
        try:
            expected = expression.search(document)
        except jmespath.exceptions.JMESPathError:
            continue
        assert answer_module._search(expression, document, "k", None) == expected


def test_a_field_that_fails_at_run_time_is_logged_and_noted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # length() of a number is a JMESPath type error at run time, not at load.
    answer_rules = rules(tmp_path, 'fields: {scope: "length(expires_in)"}')
    failed: list[str] = []
    with caplog.at_level(logging.WARNING, logger="gateway.upstream.answer"):
        result = normalise(answer({"access_token": "at-secret", "expires_in": 60}), answer_rules, failed=failed)
    assert result == {"access_token": "at-secret", "token_type": "Bearer", "expires_in": 60}  # scope: missing
    assert failed == ["answer.fields.scope"]
    [record] = [r for r in caplog.records if r.name == "gateway.upstream.answer"]
    assert "answer.fields.scope" in record.getMessage() and "length(expires_in)" in record.getMessage()
    assert "at-secret" not in record.getMessage() + repr(vars(record))


def test_a_failing_error_when_makes_the_answer_unusable(tmp_path: Path) -> None:
    answer_rules = rules(tmp_path, 'error: {when: "length(code) > `5`"}')
    failed: list[str] = []
    with pytest.raises(ExpressionFailed) as raised:
        normalise(answer({"access_token": "at", "code": 0}), answer_rules, failed=failed)
    assert isinstance(raised.value, ServerError) and raised.value.status == 502
    assert failed == ["answer.error.when"]
    # It still works where it can be evaluated, and an HTTP error needs no evaluation at all.
    assert normalise(answer({"access_token": "at", "code": "ok"}), answer_rules, failed=failed)["access_token"] == "at"
    with pytest.raises(ServerError):
        normalise(answer({"code": 0}, status=401), answer_rules, failed=failed)
    assert failed == ["answer.error.when"]


def test_failures_are_counted_by_provider_and_key() -> None:
    metrics = Metrics()
    metrics.expressions_failed("p", ["answer.fields.scope", "answer.fields.scope", "answer.root"])
    value = metrics.registry.get_sample_value
    assert value("gateway_answer_expression_failures_total", {"provider": "p", "key": "answer.fields.scope"}) == 2
    assert value("gateway_answer_expression_failures_total", {"provider": "p", "key": "answer.root"}) == 1
