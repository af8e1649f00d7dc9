"""Run a mapping's ``examples:``: documented upstream answers and the normalised result each must give.

``gateway check`` and the test suite both run them, so every mapping is tested offline by writing
down what its provider documents. An example expects either the RFC 6749 §5.1 body exactly, or
an error: ``{error, error_description?, status?}`` (status defaults to 400).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.config.mapping import Example, ProviderMapping
from gateway.oauth.responses import OAuthError
from gateway.upstream.answer import UpstreamAnswer, normalise, token_to_exchange

__all__ = ["run_example", "run_examples"]

_REFRESH_TOKEN_SENT = "refresh-token-sent-by-the-platform"


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def run_example(mapping: ProviderMapping, example: Example) -> dict[str, Any]:
    """The answer the platform would get for ``example``: a token body, or an error with its status."""
    answer = UpstreamAnswer(example.status, example.content_type, _body_bytes(example.body))
    refresh = example.grant == "refresh_token"
    try:
        if example.first is not None and mapping.exchange is not None and not refresh:
            first = UpstreamAnswer(200, "application/json", _body_bytes(example.first))
            token_to_exchange(first, mapping.answer, mapping.exchange.token)  # the second step needs its token
        return dict(normalise(
            answer,
            mapping.answer,
            now=example.now,
            refresh_token_sent=_REFRESH_TOKEN_SENT if refresh else None,
            keep_refresh_token=mapping.keep_refresh_token and refresh,
        ))
    except OAuthError as err:
        return {**err.as_dict(), "status": err.status}


def run_examples(mapping: ProviderMapping) -> list[str]:
    """One ``file:line: message`` per example whose result differs from its ``expect``."""
    failures = []
    for example in mapping.examples:
        got = run_example(mapping, example)
        expected = dict(example.expect)
        if "error" in expected:
            expected.setdefault("status", 400)
            got = {key: value for key, value in got.items() if key in expected or key in ("error", "status")}
        if got != expected:
            failures.append(
                f"{example.file}:{example.line}: example {example.name!r}: expected {json.dumps(expected, sort_keys=True)}, "
                f"got {json.dumps(got, sort_keys=True)}"
            )
    return failures
