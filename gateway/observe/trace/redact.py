"""What the flow trace shows of a value: secrets as a short hash, everything else bounded.

A request's parameters and an upstream's answer are the sender's to shape, so each is cut to a
fixed number of parameters, fields, levels and characters before it is kept. A value is only ever
shown as ``sha256:`` and the first 8 hex digits of its SHA-256 (:func:`redact`), never a prefix of
the value, unless its name is one of the few that carry no secret.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["redact", "shown_params", "shown_url", "body_shape", "dict_shape", "MAX_NAME"]

#: Parameters and answer fields whose values are no secret and help to read a flow.
_SHOWN = frozenset({
    "grant_type", "response_type", "scope", "code_challenge_method", "error", "error_description",
    "token_type", "expires_in", "expires", "status", "action", "client_id", "redirect_uri", "app_id", "iss",
    "Accept", "Content-Type", "user_locale",
})

# Bounds of one hop, whoever sent it: a request's parameters are the sender's to choose, so a hop
# keeps at most this many of them, names and shown values cut short; an answer body's shape keeps
# at most ``_MAX_FIELDS`` fields over at most ``_MAX_DEPTH`` levels of nesting.
_MAX_PARAMS = 24
MAX_NAME = 64
_MAX_VALUE = 200
_MAX_FIELDS = 40
_MAX_DEPTH = 3


def redact(value: str) -> str:
    """A value as ``sha256:`` + 8 hex digits: enough to match two hops, nothing of the value itself."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:8]


def _shown(name: str, value: str) -> str:
    return value[:_MAX_VALUE] if name in _SHOWN else redact(value)


def shown_params(params: Mapping[str, Any]) -> dict[str, str]:
    """At most ``_MAX_PARAMS`` parameters, names cut to ``MAX_NAME``; the rest counted. Values as
    text: a typed JSON parameter (``expires_in: 1800``) as JSON spells it."""
    shown: dict[str, str] = {}
    for count, (name, value) in enumerate(params.items()):
        if count == _MAX_PARAMS:
            shown["…"] = f"{len(params) - _MAX_PARAMS} more parameters"
            break
        shown[name[:MAX_NAME]] = _shown(name, value if isinstance(value, str) else json.dumps(value))
    return shown


def _query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = "&".join(f"{name[:MAX_NAME]}={_shown(name, value)}" for name, value in pairs[:_MAX_PARAMS])
    return shown + (f"&…={len(pairs) - _MAX_PARAMS} more" if len(pairs) > _MAX_PARAMS else "")


def shown_url(url: str) -> str:
    """A URL with its query's and fragment's values redacted (``?state=sha256:…``, ``#access_token=sha256:…``):
    the upstream's own path is no secret. Query and fragment are read apart (RFC 3986 §3.4, §3.5), so a
    fragment is never read as part of the query's last value."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    shown = base[:_MAX_VALUE]
    if parts.query:
        shown += "?" + _query(parts.query)
    if parts.fragment:
        shown += "#" + _query(parts.fragment)
    return shown


def body_shape(content_type: str, body: bytes) -> Any:
    """The shape of an answer body: its fields with secrets hashed, or its size and kind."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        document = None
        if text and text[:1] not in "<[{":
            try:
                document = dict(parse_qsl(text, strict_parsing=True))
            except ValueError:
                pass
    if isinstance(document, dict):
        return dict_shape(document)
    if document is not None:
        return f"JSON {type(document).__name__} ({len(body)} bytes)"
    return f"{len(body)} bytes" + (" of HTML" if text[:1] == "<" else "")


def dict_shape(document: Mapping[Any, Any], depth: int = 0, budget: list[int] | None = None) -> dict[str, Any]:
    """At most ``_MAX_FIELDS`` fields in all (``budget`` is shared by the nested levels) and at most
    ``_MAX_DEPTH`` levels: an upstream's answer is the upstream's to shape, however deep."""
    budget = budget if budget is not None else [_MAX_FIELDS]
    shape: dict[str, Any] = {}
    for name, value in document.items():
        if budget[0] <= 0:
            shape["…"] = f"{len(document) - len(shape)} more fields"
            break
        budget[0] -= 1
        shape[str(name)[:MAX_NAME]] = _value_shape(str(name), value, depth, budget)
    return shape


def _value_shape(name: str, value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    if isinstance(value, dict):
        if depth + 1 >= _MAX_DEPTH:
            return f"object of {len(value)} fields"
        return dict_shape(value, depth + 1, budget)
    if isinstance(value, (bool, int, float)) or value is None:
        return value if name in _SHOWN or name in {"status", "expires_in"} else type(value).__name__
    if isinstance(value, list):
        return f"list of {len(value)}"
    return _shown(name, str(value))

