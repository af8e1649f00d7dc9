"""Infer a mapping's ``answer:`` section from real answers of the provider's token endpoint.

What one answer shows, and what this reads from it (the vocabulary is
:class:`gateway.config.models.AnswerFile`, applied by :mod:`gateway.upstream.answer`):

- **format**: JSON, or a form (GitHub's and Facebook's text/plain answers): ``auto`` then, which
  reads both;
- **root**: the object that holds the access token, when it is nested (Withings' ``body``);
  the path that holds one in *every* code-exchange answer wins (Slack's ``authed_user``, beside a
  bot token at the top), and a refresh answer that holds it elsewhere adds a fallback
  (``authed_user.access_token && authed_user || @``);
- **field names**: ``accessToken``, ``refresh-token``, ``Scope``, … (any case, ``_`` or ``-``);
- **lifetime**: relative seconds (a number or its text) under ``expires_in``, ``expires`` or
  another name; an absolute ``expires_at`` (or ``expires_on``, ``expiry``…) in epoch seconds or
  milliseconds; ISO-8601 text when the normaliser reads it (:data:`ABSOLUTE_FORMS`); or none at
  all, when ``expires_in_default`` is chosen (ten years without a refresh token: nothing could
  renew it anyway; the default hour with one);
- **scope**: a list, or text with its separator (``upstream.scope_separator``);
- **token_type** spelled otherwise (``bearer``, ``user``): always answered as ``Bearer``, noted;
- **errors**: the error condition for errors sent with HTTP 200 (a boolean that turns false, a
  status that stops being 0, a key only errors have), where the code and its text are, and the map
  of the provider's codes to RFC 6749 §5.2 ones, guessed from the HTTP status and the code's words.

Each choice made between readings is a note for the line it concerns (:data:`Notes`), written
as a comment there. No network, no web framework: documents in, a section and notes out.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.config.models import AnswerFile, TokenErrorCode
from gateway.init.samples import Sample
from gateway.init.yamltext import Path

__all__ = ["AnswerDraft", "InferenceError", "infer_answer", "ABSOLUTE_FORMS", "guess_error", "RFC_ERRORS"]

ANSWER: Path = ("upstream", "answer")
RFC_ERRORS: frozenset[str] = frozenset(TokenErrorCode.__args__)  # type: ignore[attr-defined]
#: The forms of an absolute expiry the answer vocabulary reads (gateway/upstream/answer.py
#: ``_expires_in``). ISO-8601 text is read where the vocabulary has ``answer.expires_at_format``
#: (``iso8601``): then init points ``fields.expires_at`` at it and writes that key; until then it
#: notes the time and answers a default lifetime. This line is all that knows which.
ABSOLUTE_FORMS: frozenset[str] = frozenset(
    {"epoch_seconds", "epoch_milliseconds"} | ({"iso8601"} if "expires_at_format" in AnswerFile.model_fields else set())
)
TEN_YEARS = 315360000
_DEFAULTS = AnswerFile()


class InferenceError(ValueError):
    """The answers say nothing usable (no access token anywhere, say)."""


@dataclass
class AnswerDraft:
    """What the answers showed: the ``answer:`` section and the keys beside it, with notes."""

    answer: dict[str, Any] = field(default_factory=dict)
    #: ``upstream.scope_separator`` when a scope text showed one.
    scope_separator: str | None = None
    #: ``upstream.token.refresh.keep_refresh_token`` when refresh answers carry no refresh token.
    keep_refresh_token: bool = False
    #: A scope was in the answers (so ``scope_separator`` was judged).
    scope_seen: bool = False
    #: The lifetime is an absolute time: each example needs its ``now``.
    absolute_expiry: bool = False
    notes: dict[Path, str] = field(default_factory=dict)

    def note(self, path: Path, text: str) -> None:
        self.notes[path] = f"{self.notes[path]}; {text}" if path in self.notes else text


# -- names and paths ------------------------------------------------------------------------------------
def _squash(name: str) -> str:
    return re.sub(r"[_\-\s]", "", name).lower()


_ACCESS = {"accesstoken"}
_NAMES: dict[str, set[str]] = {
    "refresh_token": {"refreshtoken"},
    "scope": {"scope", "scopes"},
    "id_token": {"idtoken"},
}
#: Lifetime keys, in the order they are tried.
_EXPIRY = ("expiresin", "expires", "expiresinseconds", "expiry", "expiresat", "expireson", "expiration", "expirationtime")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _ident(key: str | int) -> str:
    """One JMESPath step: a name (quoted unless it is an identifier) or an index."""
    if isinstance(key, int):
        return f"[{key}]"
    return key if _IDENT.fullmatch(key) else json.dumps(key)


def jmespath_of(path: Sequence[str | int]) -> str:
    text = ""
    for key in path:
        step = _ident(key)
        text += step if step.startswith("[") or not text else f".{step}"
    return text or "@"


def _key_for(objects: Iterable[dict[str, Any]], names: set[str]) -> str | None:
    for obj in objects:
        for key in obj:
            if isinstance(key, str) and _squash(key) in names:
                return key
    return None


def _token_paths(document: Any, depth: int = 4) -> list[tuple[str, ...]]:
    """Paths to the objects holding an access token, the shallowest first."""
    found: list[tuple[str, ...]] = []
    level: list[tuple[tuple[str, ...], Any]] = [((), document)]
    for _ in range(depth):
        below: list[tuple[tuple[str, ...], Any]] = []
        for path, obj in level:
            if not isinstance(obj, dict):
                continue
            if any(isinstance(k, str) and _squash(k) in _ACCESS and isinstance(v, str) and v for k, v in obj.items()):
                found.append(path)
            below += [((*path, k), v) for k, v in obj.items() if isinstance(v, dict)]
        level = below
    return found


def _at(document: Any, path: Sequence[str | int]) -> Any:
    for key in path:
        if isinstance(key, int):
            document = document[key] if isinstance(document, list) and len(document) > key else None
        else:
            document = document.get(key) if isinstance(document, dict) else None
    return document


# -- the token ------------------------------------------------------------------------------------------
def _root(draft: AnswerDraft, samples: Sequence[Sample]) -> list[tuple[str, ...]]:
    """The root paths, in the order tried; sets ``answer.root``."""
    code = [s for s in samples if s.role == "token"] or list(samples)
    paths = {id(s): _token_paths(s.document) for s in samples}
    for sample in samples:
        if not paths[id(sample)]:
            raise InferenceError(f"{sample.name or 'an answer'} holds no access token: is it an error answer?")
    common = [p for p in paths[id(code[0])] if all(p in paths[id(s)] for s in code)]
    chosen = common[:1] or [paths[id(code[0])][0]]
    if not common:
        draft.note((*ANSWER, "root"), "the code-exchange answers hold the token in different places: each is tried in turn")
    for sample in samples:
        if not any(p in paths[id(sample)] for p in chosen):
            chosen.append(paths[id(sample)][0])
    first = paths[id(code[0])]
    if len(first) > 1 and common:
        where = ", ".join(jmespath_of(p) if p else "the top" for p in first)
        draft.note((*ANSWER, "root"), f"an answer holds tokens at {where}: took {jmespath_of(chosen[0]) if chosen[0] else 'the top'}, the one every code-exchange answer has")
    if chosen == [()]:
        return chosen
    if len(chosen) == 1:
        draft.answer["root"] = jmespath_of(chosen[0])
        return chosen
    access = _key_for([_at(s.document, chosen[0]) or {} for s in samples], _ACCESS) or "access_token"
    parts = [f"{jmespath_of(p)}.{_ident(access)} && {jmespath_of(p)}" for p in chosen[:-1] if p]
    parts.append(jmespath_of(chosen[-1]))
    draft.answer["root"] = " || ".join(parts)
    if (*ANSWER, "root") not in draft.notes:
        draft.note((*ANSWER, "root"), "refresh answers hold the token elsewhere than code-exchange answers: both are tried")
    return chosen


def _token_object(sample: Sample, roots: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    for path in roots:
        obj = _at(sample.document, path)
        if isinstance(obj, dict) and _key_for([obj], _ACCESS):
            return obj
    return {}


def _iso(value: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def expiry_form(value: Any) -> str | None:
    """``relative``, ``epoch_seconds``, ``epoch_milliseconds``, ``iso8601``, or ``None`` (not a lifetime)."""
    if isinstance(value, bool) or value is None:
        return None
    number: float | None = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return "iso8601" if _iso(value) is not None else None
    if number is None or number <= 0:
        return None
    if number > 1e11:
        return "epoch_milliseconds"
    if number > 1e9:
        return "epoch_seconds"
    return "relative"


def _lifetime(draft: AnswerDraft, objects: Sequence[dict[str, Any]], refresh_key: str | None, renewable: Sequence[bool]) -> None:
    """``renewable``: per object, whether the platform holds a refresh token after it (its own, or a kept one)."""
    fields: dict[str, str] = draft.answer.setdefault("fields", {})
    seen: list[tuple[str, str, Any]] = []  # (key, form, value)
    for obj in objects:
        for squashed in _EXPIRY:
            key = next((k for k in obj if isinstance(k, str) and _squash(k) == squashed), None)
            form = expiry_form(obj.get(key)) if key is not None else None
            if key is not None and form is not None:
                seen.append((key, form, obj[key]))
                break
    where = (*ANSWER, "fields")
    timeless = [
        (obj, kept) for obj, kept in zip(objects, renewable, strict=True)
        if not any(isinstance(k, str) and _squash(k) in _EXPIRY and expiry_form(v) for k, v in obj.items())
    ]
    if any(refresh_key not in obj and not kept for obj, kept in timeless):
        draft.answer["expires_in_default"] = TEN_YEARS
        draft.note(
            (*ANSWER, "expires_in_default"),
            "an answer has neither a lifetime nor a refresh token: its token is taken not to expire (ten years); nothing could renew it anyway",
        )
    elif timeless:
        draft.note((*ANSWER, "expires_in_default"), "an answer gives no lifetime: an hour is assumed (the platform refreshes then)")
        draft.answer["expires_in_default"] = _DEFAULTS.expires_in_default
    if not seen:
        return
    key, form, value = seen[0]
    if len({(k, f) for k, f, _ in seen}) > 1:
        draft.note(where, "the answers give their lifetime in different forms: the first one's is used")
    if form == "relative":
        if isinstance(value, str):
            draft.note((*ANSWER, "format"), f"{key} comes as text ({value!r}): read as a number of seconds")
        if key not in ("expires_in", "expires"):
            fields["expires_in"] = _ident(key)
            draft.note((*where, "expires_in"), f"{key} holds a lifetime in seconds ({value!r})")
        return
    if form == "iso8601" and form not in ABSOLUTE_FORMS:
        draft.note(
            (*ANSWER, "expires_in_default"),
            f"{key} is an ISO-8601 time ({value!r}), which this gateway does not read: the default lifetime is answered",
        )
        draft.answer["expires_in_default"] = _DEFAULTS.expires_in_default
        return
    draft.absolute_expiry = True
    if form == "iso8601":
        draft.answer["expires_at_format"] = "iso8601"
    unit = {"epoch_seconds": "epoch seconds", "epoch_milliseconds": "epoch milliseconds", "iso8601": "ISO-8601"}[form]
    if key != "expires_at":
        fields["expires_at"] = _ident(key)
        draft.note((*where, "expires_at"), f"{key} is an absolute time ({unit}, {value!r}), not a lifetime")
    else:
        draft.note((*ANSWER, "format"), f"expires_at is an absolute time in {unit}")
    for relative in ("expires_in", "expires"):
        if key == relative:  # the normaliser would read it as seconds from now
            fields[relative] = "`null`"


def _scope(draft: AnswerDraft, objects: Sequence[dict[str, Any]]) -> None:
    key = _key_for(objects, _NAMES["scope"])
    if key is None:
        return
    draft.scope_seen = True
    if key != "scope":
        draft.answer.setdefault("fields", {})["scope"] = _ident(key)
    values = [obj[key] for obj in objects if key in obj]
    if values and all(isinstance(v, list) for v in values):
        draft.note((*ANSWER, "fields", "scope") if key != "scope" else (*ANSWER, "format"), "scope comes as a list")
        return
    separators = set()
    for value in values:
        if isinstance(value, str):
            # a scope may hold ':', '.', '/' (Google's are URLs), never these; a space after a comma is trimmed
            found = next((mark for mark in (",", ";", "|", " ", "+") if mark in value.strip()), None)
            if found is not None:
                separators.add(found)
    if len(separators) == 1 and separators != {" "}:
        draft.scope_separator = separators.pop()
    elif len(separators) > 1:
        draft.scope_separator = sorted(separators - {" "})[0] if separators - {" "} else " "
        draft.notes[("upstream", "scope_separator")] = (
            f"the answers separate scopes with {' and '.join(repr(m) for m in sorted(separators))}: {draft.scope_separator!r} taken"
        )
    elif not separators:
        draft.notes[("upstream", "scope_separator")] = "every answer has one scope only, so the separator is not seen: a space (RFC 6749 §3.3) is assumed"


def _fields(draft: AnswerDraft, objects: Sequence[dict[str, Any]]) -> None:
    fields: dict[str, str] = draft.answer.setdefault("fields", {})
    access = _key_for(objects, _ACCESS)
    if access and access != "access_token":
        fields["access_token"] = _ident(access)
    for name in ("refresh_token", "id_token"):
        key = _key_for(objects, _NAMES[name])
        if key and key != name:
            fields[name] = _ident(key)
    types = sorted({str(obj[k]) for obj in objects for k in obj if isinstance(k, str) and _squash(k) == "tokentype"})
    odd = [t for t in types if t != "Bearer"]
    if odd:
        kind = "case-insensitive (RFC 6749 §7.1)" if all(t.lower() == "bearer" for t in odd) else "check the provider's token is a bearer token"
        draft.note((*ANSWER, "format"), f"token_type {', '.join(repr(t) for t in odd)} is answered as Bearer: {kind}")


# -- errors ---------------------------------------------------------------------------------------------
_CODE_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("error",), ("error", "code"), ("error", "type"), ("error", "error"), ("errors", 0, "errorType"),
    ("errors", 0, "code"), ("errors", 0, "error"), ("error_code",), ("errorCode",), ("code",), ("type",),
)
_TEXT_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("error_description",), ("error", "message"), ("error", "error_description"), ("errors", 0, "message"),
    ("message",), ("error_message",), ("errorMessage",), ("msg",), ("detail",), ("reason",), ("error",),
)
#: Words of a provider's error code or text, and the RFC 6749 §5.2 code they point at; the first match wins.
_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("client id", "client secret", "clientid", "client credentials", "invalid client", "bad client", "unknown client"), "invalid_client"),
    (("rate limit", "ratelimit", "limit", "too many", "throttl", "quota", "slow down"), "temporarily_unavailable"),
    (("unavailable", "maintenance", "try again", "timeout", "timed out", "internal", "fatal", "server error"), "temporarily_unavailable"),
    (("redirect",), "invalid_request"),
    (("grant type", "granttype"), "unsupported_grant_type"),
    (("scope",), "invalid_scope"),
    (("code", "expired", "revoked", "refresh token", "invalid grant", "used", "authoriz", "token"), "invalid_grant"),
)


#: Words that say the grant is bad even under HTTP 401 (ecobee's authorization_expired).
_GRANT_WORDS = ("expired", "revoked", "invalid grant", "refresh token", "code")


def guess_error(code: str, text: str, status: int) -> tuple[str, str]:
    """The RFC 6749 code a provider's error code stands for, and why (for the note)."""
    words = re.sub(r"[_\-.]", " ", f"{code} {text}".lower())
    if status == 401:
        hit = next((n for n in _GRANT_WORDS if n in words), None)
        if hit is not None:
            return "invalid_grant", f"HTTP 401, but the word {hit!r} says the grant is bad, not the gateway's client"
        return "invalid_client", "HTTP 401: the provider refused the gateway's client authentication (RFC 6749 §5.2)"
    for needles, rfc in _WORDS:
        hit = next((n for n in needles if n in words), None)
        if hit is not None:
            return rfc, f"guessed from the word {hit!r}"
    return "invalid_grant", "no word says what it is: read as a bad grant, the usual answer to a bad code or refresh token"


def _first_path(documents: Sequence[Any], paths: Iterable[tuple[str | int, ...]], accept: Callable[[Any], bool]) -> tuple[str | int, ...] | None:
    for path in paths:
        if any(accept(_at(doc, path)) for doc in documents):
            return path
    return None


def _is_code(value: Any) -> bool:
    return (isinstance(value, str) and bool(value)) or (isinstance(value, int) and not isinstance(value, bool))


def _default_flags(document: Any) -> bool:
    """The normaliser's own rule without ``when``: an ``error`` and no ``access_token``."""
    return isinstance(document, dict) and "error" in document and "access_token" not in document


def _when(draft: AnswerDraft, successes: Sequence[Any], errors_200: Sequence[Any]) -> tuple[str, ...] | None:
    """``error.when`` for errors sent with HTTP 200; the numeric status key it compares, if any."""
    path = (*ANSWER, "error", "when")
    misread = [doc for doc in successes if _default_flags(doc)]
    if not errors_200 and not misread:
        return None
    keys = set.intersection(*(set(d) for d in [*successes, *errors_200])) if successes and errors_200 else set()
    for key in sorted(keys):
        ok = [d[key] for d in successes]
        bad = [d[key] for d in errors_200]
        if all(v is True for v in ok) and all(v is False for v in bad):
            draft.answer.setdefault("error", {})["when"] = f"{_ident(key)} == `false`"
            draft.note(path, f"errors come with HTTP 200 and {key}: false")
            return None
    for key in sorted(keys):
        ok = [d[key] for d in successes]
        bad = [d[key] for d in errors_200]
        numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in ok + bad)
        if numbers and all(v == 0 for v in ok) and all(v != 0 for v in bad):
            draft.answer.setdefault("error", {})["when"] = f"{_ident(key)} != `0`"
            draft.note(path, f"errors come with HTTP 200 and a non-zero {key}")
            return (key,)
    if errors_200 and all(_default_flags(d) for d in errors_200) and not misread:
        draft.note((*ANSWER, "error"), "errors come with HTTP 200 and an error field, which marks them without a condition")
        return None
    only = [k for k in set.intersection(*(set(d) for d in errors_200)) if all(d.get(k) is None for d in successes)] if errors_200 else []
    if only:
        key = sorted(only)[0]
        draft.answer.setdefault("error", {})["when"] = f"{_ident(key)} != null"
        draft.note(path, f"errors come with HTTP 200; only they have {key}")
    else:
        draft.note((*ANSWER, "error"), "no field tells the HTTP 200 errors from tokens: write answer.error.when")
    return None


def _errors(draft: AnswerDraft, successes: Sequence[Sample], errors: Sequence[Sample]) -> None:
    readable = [s for s in errors if isinstance(s.document, dict)]
    errors_200 = [s.document for s in readable if s.status < 400]
    status_key = _when(draft, [s.document for s in successes], errors_200)
    if not readable:
        return
    docs = [s.document for s in readable]
    error: dict[str, Any] = draft.answer.setdefault("error", {})
    code_path: tuple[str | int, ...] | None = status_key or _first_path(docs, _CODE_PATHS, _is_code)
    if code_path is None:
        draft.note((*ANSWER, "error"), "no error code found in the error answers: write answer.error.code")
        return
    numeric = any(isinstance(_at(d, code_path), int) for d in docs)
    code_expr = f"to_string({jmespath_of(code_path)})" if numeric else jmespath_of(code_path)
    if code_expr != _DEFAULTS.error.code:
        error["code"] = code_expr
    text_path = _first_path(docs, _TEXT_PATHS, lambda v: isinstance(v, str) and bool(v))
    codes = [_at(d, code_path) for d in docs]
    if text_path is None and any(isinstance(c, str) and c not in RFC_ERRORS for c in codes):
        text_path = code_path  # Slack: the code is all the text there is
    if text_path == ("error",) == code_path and all(str(c) in RFC_ERRORS for c in codes if _is_code(c)):
        text_path = None  # an RFC 6749 code is not a description
    if text_path is not None and jmespath_of(text_path) != _DEFAULTS.error.description:
        error["description"] = jmespath_of(text_path)
    mapped: dict[str, str] = {}
    for sample, code in zip(readable, codes, strict=True):
        if not _is_code(code) or str(code) in RFC_ERRORS or str(code) in mapped:
            continue
        text = _at(sample.document, text_path) if text_path is not None else ""
        rfc, why = guess_error(str(code), text if isinstance(text, str) else "", sample.status)
        mapped[str(code)] = rfc
        draft.note((*ANSWER, "error", "map", str(code)), why)
    if mapped:
        error["map"] = mapped


# -- the whole section ----------------------------------------------------------------------------------
def infer_answer(samples: Sequence[Sample]) -> AnswerDraft:
    """The ``answer:`` section (and ``scope_separator``, ``keep_refresh_token``) the samples show."""
    successes = [s for s in samples if s.role != "error"]
    errors = [s for s in samples if s.role == "error"]
    draft = AnswerDraft()
    formats = {s.format for s in samples if s.format is not None}
    draft.answer["format"] = "auto" if "form" in formats else "json"
    if "form" in formats:
        draft.note((*ANSWER, "format"), "the provider answered a form: auto reads a form and JSON alike")
    if successes:
        roots = _root(draft, successes)
        objects = [_token_object(s, roots) for s in successes]
        _fields(draft, objects)
        refresh_key = _key_for(objects, _NAMES["refresh_token"])
        tokens = [o for s, o in zip(successes, objects, strict=True) if s.role == "token"]
        refreshes = [o for s, o in zip(successes, objects, strict=True) if s.role == "refresh"]
        if refresh_key and any(refresh_key in o for o in tokens) and any(refresh_key not in o for o in refreshes):
            draft.keep_refresh_token = True
            draft.notes[("upstream", "token", "refresh", "keep_refresh_token")] = (
                "a refresh answer has no refresh token: the platform's is kept (RFC 6749 §6)"
            )
        renewable = [s.role == "refresh" and draft.keep_refresh_token for s in successes]
        _lifetime(draft, objects, refresh_key, renewable)
        _scope(draft, objects)
    _errors(draft, [s for s in successes if isinstance(s.document, dict)], errors)
    if not draft.answer.get("fields"):
        draft.answer.pop("fields", None)
    if not draft.answer.get("error"):
        draft.answer.pop("error", None)
    return draft
