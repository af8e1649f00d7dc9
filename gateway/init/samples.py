"""One real answer of a provider's token endpoint, as ``gateway init`` is given it.

A file holds the body alone (JSON, or form text as GitHub and Facebook answer), or a whole HTTP
answer as ``curl -i`` prints it (``HTTP/1.1 400 Bad Request``, the headers, a blank line, the
body): then its status and ``Content-Type`` are taken from it. The body is parsed as the
normaliser parses it (:func:`gateway.upstream.answer.parse_body`): JSON when it looks like JSON,
else an ``application/x-www-form-urlencoded`` form.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

__all__ = ["Role", "Sample", "SampleError", "parse_sample", "FORM_TYPE"]

#: What the answer was to: the code exchange, a refresh, or a request that failed.
Role = Literal["token", "refresh", "error"]
FORM_TYPE = "application/x-www-form-urlencoded"
_STATUS_LINE = re.compile(r"HTTP/[0-9.]+\s+([0-9]{3})\b[^\n]*\n")


class SampleError(ValueError):
    """An answer that can not be read (its message says which and why)."""


@dataclass(frozen=True)
class Sample:
    """A provider's answer: its role, HTTP status, Content-Type and body, and the body parsed."""

    role: Role
    text: str
    status: int
    content_type: str | None
    #: ``json`` or ``form``; ``None`` when the body is neither (an HTML error page).
    format: Literal["json", "form"] | None
    document: Any
    #: Where it came from (a file name), for the example's name.
    name: str | None = None
    #: The clock when the answer was given (epoch seconds), for an absolute expiry.
    now: float | None = None
    #: When it was saved (a file's modification time): the clock for it when the lifetime is absolute.
    received: float | None = None

    @property
    def grant(self) -> Literal["authorization_code", "refresh_token"]:
        return "refresh_token" if self.role == "refresh" else "authorization_code"


def _parse(text: str, content_type: str | None) -> tuple[Literal["json", "form"] | None, Any]:
    stripped = text.strip()
    if stripped[:1] in ("{", "[") or "json" in (content_type or ""):
        try:
            return "json", json.loads(stripped)
        except (ValueError, RecursionError):
            return None, None
    if not stripped or stripped[:1] == "<" or "html" in (content_type or ""):
        return None, None
    try:
        return "form", dict(parse_qsl(stripped, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        return None, None


def parse_sample(
    text: str, role: Role, *, status: int | None = None, content_type: str | None = None, name: str | None = None,
    now: float | None = None,
    received: float | None = None,
) -> Sample:
    """A :class:`Sample` from a file's text; ``status`` and ``content_type`` win over an HTTP dump's."""
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    dumped_status = None
    match = _STATUS_LINE.match(text.lstrip())
    if match is not None:
        rest = text.lstrip()[match.end():]
        head, _, body = ("", "", rest[1:]) if rest.startswith("\n") else rest.partition("\n\n")
        dumped_status = int(match.group(1))
        for line in head.splitlines():
            field, _, value = line.partition(":")
            if field.strip().lower() == "content-type" and content_type is None:
                content_type = value.strip()
        text = body
    final_status = status if status is not None else dumped_status if dumped_status is not None else (400 if role == "error" else 200)
    fmt, document = _parse(text, content_type)
    if role != "error" and not 200 <= final_status < 300:
        raise SampleError(f"{name or 'the answer'} has HTTP status {final_status}: give it as an error answer")
    if role != "error" and fmt is None:
        raise SampleError(f"{name or 'the answer'} is neither JSON nor a form: save the body the token endpoint answered")
    if fmt is not None and not isinstance(document, dict):
        raise SampleError(f"{name or 'the answer'} is not a JSON object")
    if fmt == "json" and content_type is None:
        content_type = None  # application/json: the examples' default
    elif fmt == "form" and content_type is None:
        content_type = FORM_TYPE
    return Sample(role, text.strip(), final_status, content_type, fmt, document, name, now, received)
