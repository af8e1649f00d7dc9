"""Turn whatever an upstream token endpoint answered into an RFC 6749 §5.1 answer or §5.2 error.

Applied in this order (docs/mapping-reference.md):

1. parse the body: ``format: json | form | auto`` (auto: JSON if it looks like JSON, else
   ``application/x-www-form-urlencoded`` — GitHub's and Facebook's text/plain answers);
2. ``error.when`` (JMESPath over the whole document), or an HTTP status ≥ 400, or a document with
   an ``error`` but no token, marks an error; ``error.code``/``error.description`` pick its fields and
   ``error.map`` renames the code to an RFC 6749 one;
3. ``root`` (JMESPath) selects the object that holds the token (Withings' ``body``);
4. ``fields`` (JMESPath each) pick ``access_token``, ``refresh_token``, ``scope``, ``id_token`` and the
   lifetime from ``expires_in``, else ``expires`` (both relative, number or numeric text), else
   ``expires_at`` (absolute: epoch seconds, or ISO 8601 text with ``expires_at_format: iso8601``), else
   ``expires_in_default``;
5. ``token_type`` is always ``Bearer`` (RFC 6749 §7.1 says it is case-insensitive; platforms don't);
   ``scope`` is split on the provider's separator (or taken as a list) and joined with spaces (§3.3).

An expression that is a plain name (``access_token``, most of them) is a ``dict.get``; the others
share one JMESPath interpreter (``ParsedResult.search`` builds a new one per call, with garbage
that only the cyclic GC frees). An expression that fails at run time (a function given the wrong
type, say) is logged and counted (``gateway_answer_expression_failures``); its value reads as
missing, except ``error.when``, whose failure makes the answer unusable (502), never "no error".
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jmespath.exceptions
import jmespath.parser
import jmespath.visitor

from gateway.config.mapping import AnswerRules
from gateway.config.models import TOKEN_ERRORS
from gateway.oauth.responses import OAuthError, ServerError, TemporarilyUnavailable, TokenAnswer

__all__ = [
    "UpstreamAnswer", "parse_body", "normalise", "is_transient", "MAX_ANSWER_BYTES", "ExpressionFailed", "token_to_exchange",
]

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
# Errors the upstream raises about *the gateway's* own credentials or request are not the
# platform's fault: answering Alexa "invalid_client" would blame the skill's secret, which is fine.
_GATEWAY_SIDE_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_request", "unsupported_grant_type"})


@dataclass(frozen=True)
class UpstreamAnswer:
    """What the upstream token endpoint said, before any mapping."""

    status: int
    content_type: str
    body: bytes
    #: How long the call took, from sending to the last byte (:func:`gateway.upstream.client.send`
    #: measures it; the callers record it).
    seconds: float = field(default=0.0, compare=False)


def parse_body(answer: UpstreamAnswer, fmt: str) -> Any:
    """The answer as a document; ``ServerError`` if it is neither JSON nor a form."""
    text = answer.body.decode("utf-8", errors="replace").strip()
    looks_json = text[:1] in ("{", "[") or "json" in answer.content_type
    if fmt == "auto" and not looks_json and ("html" in answer.content_type or text[:1] == "<"):
        # A proxy's or firewall's page: `<html lang="en">` would otherwise parse as a form.
        raise ServerError(f"upstream answered HTTP {answer.status} with an HTML page")
    if fmt == "json" or (fmt == "auto" and looks_json):
        try:
            # json.loads(text), past its two Python layers: ``text`` is stripped already, so
            # nothing may follow the document.
            document, end = _DECODER.raw_decode(text)
            if end != len(text):
                raise ValueError("extra data after the document")
            return document
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
            if fmt == "json":
                raise ServerError(f"upstream answered HTTP {answer.status} with a body that is not JSON") from None
    if not text:
        return {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ServerError(f"upstream answered HTTP {answer.status} with a body that is neither JSON nor a form") from None
    return dict(pairs)


class ExpressionFailed(ServerError):
    """``answer.error.when`` failed at run time: nothing says whether the answer is an error."""


#: ``json.loads``'s own decoder.
_DECODER = json.JSONDecoder()
#: Stateless between searches; one for all (``ParsedResult.search`` would build one per call).
_INTERPRETER = jmespath.visitor.TreeInterpreter()


def _search(
    expression: jmespath.parser.ParsedResult, document: Any, key: str, failed: list[str] | None, section: str = "answer."
) -> Any:
    """``expression`` over ``document``; a failure at run time is logged, noted in ``failed``
    (the request counts it) and reads as ``None``."""
    node = expression.parsed
    if node["type"] == "field":  # a plain name: what TreeInterpreter.visit_field does, directly
        return document.get(node["value"]) if isinstance(document, dict) else None
    try:
        return _INTERPRETER.visit(node, document)
    except jmespath.exceptions.JMESPathError as exc:  # e.g. a type error inside a function
        # Only the exception's type: its message can quote the answer, which holds tokens.
        key = section + key
        log.warning("mapping expression %s (%s) failed on the upstream's answer: %s", key, expression.expression, type(exc).__name__)
        if failed is not None:
            failed.append(key)
        return None


def _as_seconds(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number, or an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if type(value) is str:  # nearly always: itself, or None when empty
        return value or None
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value)
    return text or None


def _scope(value: Any, separator: str) -> str | None:
    if isinstance(value, list):
        parts = [str(item) for item in value if isinstance(item, (str, int))]
    elif isinstance(value, str):
        parts = value.split(separator) if separator.strip() else value.split()
    else:
        return None
    joined = " ".join(part.strip() for part in parts if part.strip())
    return joined or None


def is_transient(http_status: int) -> bool:
    """Statuses that say "try again later" (RFC 9110 §15.6, RFC 6585 §4), never "the grant is bad"."""
    return http_status >= 500 or http_status in (408, 429)


def _error_from(document: Any, rules: AnswerRules, http_status: int, failed: list[str] | None) -> OAuthError:
    """The RFC 6749 §5.2 error an upstream error answer amounts to, from the platform's side."""
    code = _text(_search(rules.error.code, document, "error.code", failed)) or ""
    description = (_text(_search(rules.error.description, document, "error.description", failed)) or "")[:500]
    if is_transient(http_status):
        # An outage or a rate limit never reads as a bad grant, whatever the body says: Google
        # unlinks on invalid_grant, and the grant may well be good.
        return TemporarilyUnavailable(description or f"upstream answered HTTP {http_status}")
    if not code:
        # No error code at all (a bare 401, a firewall's 403 page): nothing says the grant is bad,
        # so the platform must not be told it is.
        return ServerError(f"upstream answered HTTP {http_status} without an OAuth error code")
    mapped = rules.error.map.get(code, code)
    if mapped not in TOKEN_ERRORS:
        # An unknown code on a code or refresh exchange almost always means the grant is bad;
        # invalid_grant is what makes Google unlink and Alexa ask the user to link again.
        mapped = "invalid_grant"
    if mapped in _GATEWAY_SIDE_ERRORS:
        return ServerError(
            f"upstream refused the gateway's own request ({mapped}): check the mapping and the upstream credentials"
        )
    if mapped == "temporarily_unavailable":
        return TemporarilyUnavailable(description or "upstream is temporarily unavailable")
    if mapped == "server_error":
        return ServerError(description or "upstream server error")
    if not description and code and code != mapped:
        description = f"upstream error {code}"
    return OAuthError(description, error=mapped, status=400)


def _is_error(document: Any, rules: AnswerRules, http_status: int, failed: list[str] | None) -> bool:
    if rules.error.when is not None:
        if http_status >= 400:
            return True
        noted: list[str] = []
        when = _search(rules.error.when, document, "error.when", noted)
        if noted:
            if failed is not None:
                failed += noted
            raise ExpressionFailed("the mapping's answer.error.when could not be applied to the upstream's answer")
        return bool(when)
    return http_status >= 400 or (isinstance(document, dict) and "error" in document and "access_token" not in document)


def normalise(
    answer: UpstreamAnswer,
    rules: AnswerRules,
    *,
    now: float | None = None,
    refresh_token_sent: str | None = None,
    keep_refresh_token: bool = False,
    failed: list[str] | None = None,
) -> TokenAnswer:
    """The RFC 6749 §5.1 body for ``answer``, or raise the ``OAuthError`` it amounts to.

    ``failed`` collects the mapping keys of expressions that failed at run time, for the metric.
    """
    if 300 <= answer.status < 400:
        # A redirect is never a token answer (RFC 6749 §5.1 is a 200), whatever body it carries.
        raise ServerError(f"upstream answered a redirect (HTTP {answer.status})")
    try:
        document = parse_body(answer, rules.format)
    except ServerError:
        if is_transient(answer.status):  # an outage or rate-limit page (HTML) from a proxy in front
            raise TemporarilyUnavailable(f"upstream answered HTTP {answer.status}") from None
        raise
    if _is_error(document, rules, answer.status, failed):
        raise _error_from(document, rules, answer.status, failed)

    token_object = _search(rules.root, document, "root", failed) if rules.root is not None else document
    if not isinstance(token_object, dict):
        raise ServerError("upstream answer has no token object where the mapping's answer.root points")

    fields: Mapping[str, Any] = {
        name: token_object.get(key) if key is not None else _search(expr, token_object, name, failed, "answer.fields.")
        for name, key, expr in rules.plain_fields
    }
    access_token = _text(fields.get("access_token"))
    if not access_token:
        raise ServerError("upstream answer has no access_token")

    result: TokenAnswer = {"access_token": access_token, "token_type": "Bearer"}
    lifetime = fields.get("expires_in")
    if type(lifetime) is int and 0 < lifetime < _EXACT:  # most answers: what _expires_in makes of it, directly
        result["expires_in"] = lifetime
    else:
        expires_in = _expires_in(fields, rules, now)
        if expires_in is not None:  # None: ``expires_in_default: null``, the platform's own default applies
            result["expires_in"] = expires_in

    refresh_token = _text(fields.get("refresh_token"))
    if refresh_token:
        result["refresh_token"] = refresh_token
    elif keep_refresh_token and refresh_token_sent:
        result["refresh_token"] = refresh_token_sent
    scope = _scope(fields.get("scope"), rules.scope_separator)
    if scope:
        result["scope"] = scope
    id_token = _text(fields.get("id_token"))
    if id_token:
        result["id_token"] = id_token
    return result


#: Integers a float holds exactly: ``max(1, int(float(n)))`` is ``n`` itself below this.
_EXACT = 2**53


def _expires_in(fields: Mapping[str, Any], rules: AnswerRules, now: float | None) -> int | None:
    """An integer ``expires_in``: platforms refresh by it and a link without it dies (Alexa)
    unless the mapping says ``expires_in_default: null`` (the skill console's default then).
    ``now``: the clock for an absolute ``expires_at`` (read only then, when None)."""
    for relative in ("expires_in", "expires"):
        seconds = _as_seconds(fields.get(relative))
        if seconds is not None and seconds > 0:
            return max(1, int(seconds))
    absolute = _iso_seconds(fields.get("expires_at")) if rules.expires_at_iso else _as_seconds(fields.get("expires_at"))
    if absolute is not None and absolute > 0:
        if absolute > 1e11:  # milliseconds since the epoch
            absolute /= 1000
        return max(1, int(absolute - (time.time() if now is None else now)))
    return rules.expires_in_default


def _iso_seconds(value: Any) -> float | None:
    """ISO 8601 text (Square's ``2026-04-04T21:46:40Z``) as epoch seconds; UTC when it names no zone."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def token_to_exchange(
    answer: UpstreamAnswer, rules: AnswerRules, token: jmespath.parser.ParsedResult, failed: list[str] | None = None
) -> str:
    """The token a code exchange's answer holds for the second step (``upstream.token.exchange``).

    An error answer is the error it amounts to, as for any token answer; an answer without the
    token is the gateway's trouble (502), never the platform's grant.
    """
    if 300 <= answer.status < 400:
        raise ServerError(f"upstream answered a redirect (HTTP {answer.status})")
    try:
        document = parse_body(answer, rules.format)
    except ServerError:
        if is_transient(answer.status):
            raise TemporarilyUnavailable(f"upstream answered HTTP {answer.status}") from None
        raise
    if _is_error(document, rules, answer.status, failed):
        raise _error_from(document, rules, answer.status, failed)
    value = _text(_search(token, document, "token", failed, "token.exchange."))
    if not value:
        raise ServerError("the code exchange's answer has no token where upstream.token.exchange.token points")
    return value
