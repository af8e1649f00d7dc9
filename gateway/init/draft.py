"""One mapping document from the parts ``gateway init`` was given: a sibling, metadata, answers.

The order of precedence is the order of specificity: a sibling mapping (``--like``) is the base,
the provider's metadata replaces its endpoints and client authentication, endpoints given by hand
replace those, and real answers replace its ``answer:`` section and examples. Each answer becomes
an ``examples:`` entry whose ``expect`` is what the real normaliser
(:func:`gateway.upstream.examples.run_example`) makes of it under the inferred rules, so the
mapping is tested from its first minute and a reader sees at once what the platform would get.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.config.mapping import ProviderMapping, parse_mapping
from gateway.config.yamlfile import Problems
from gateway.init.answers import AnswerDraft, infer_answer
from gateway.init.metadata import MetadataDraft
from gateway.init.samples import Sample
from gateway.init.yamltext import Path, render
from gateway.upstream.examples import run_example

__all__ = ["Draft", "build_draft", "answer_mapping", "env_prefix", "FLOW_KEYS"]

#: Keys whose values stay on one line in the YAML: an example's body and expectation.
FLOW_KEYS = frozenset({"body", "expect"})
_ORDER = {
    (): ("extends", "about", "platform", "grant", "upstream", "callback", "tenant", "examples"),
    ("platform",): ("profile", "vendor_ids", "project_ids", "redirect_uris", "client_id", "client_secret", "pkce"),
    ("upstream",): (
        "discovery", "issuer", "require_iss", "client_id", "client_secret", "scope_separator", "authorize", "token",
        "revoke", "answer",
    ),
    ("upstream", "authorize"): ("url", "scope", "pkce", "params"),
    ("upstream", "token"): ("url", "method", "encoding", "client_auth", "timeout", "params", "headers", "refresh"),
    ("upstream", "answer"): ("format", "root", "fields", "expires_at_format", "expires_in_default", "error"),
    ("upstream", "answer", "error"): ("when", "code", "description", "map"),
}


def env_prefix(name: str) -> str:
    """``acme-home`` → ``ACME_HOME``: the prefix of the mapping's environment variables."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@dataclass
class Draft:
    """The mapping document, the notes for its lines, its header and the variables it needs."""

    document: dict[str, Any]
    notes: dict[Path, str] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The YAML; a note whose key is not written goes to the header, so none is lost."""
        stray = [f"{'.'.join(map(str, path))}: {note}" for path, note in self.notes.items() if not _has(self.document, path)]
        return render(self.document, self.notes, header=[*self.header, *stray], flow_keys=FLOW_KEYS)


def _has(document: Any, path: Path) -> bool:
    for key in path:
        if isinstance(document, dict) and key in document:
            document = document[key]
        elif isinstance(document, list) and isinstance(key, int) and key < len(document):
            document = document[key]
        else:
            return False
    return True


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` deep-merged into ``base``: mappings key by key, the rest replaced."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _ordered(value: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(value, dict):
        return value
    order = _ORDER.get(path, ())
    keys = sorted(value, key=lambda k: (order.index(k) if k in order else len(order)))
    return {key: _ordered(value[key], (*path, key)) if isinstance(key, str) else value[key] for key in keys}


def _renamed(value: Any, old: str, new: str) -> Any:
    """``${OLD_…}`` variables of a copied sibling renamed ``${NEW_…}``."""
    if isinstance(value, str):
        return value.replace("${" + old + "_", "${" + new + "_")
    if isinstance(value, dict):
        return {key: _renamed(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, old, new) for item in value]
    return value


def answer_mapping(answer: AnswerDraft, examples: Sequence[Mapping[str, Any]], separator: str = " ") -> ProviderMapping:
    """A mapping that is the inferred answer rules alone (placeholder endpoints and credentials),
    with ``examples``: what the normaliser makes of an answer under those rules."""
    document = {
        "platform": {"profile": "alexa", "client_id": "p", "client_secret": "platform-secret"},
        "upstream": {
            "client_id": "u", "scope_separator": separator,
            "authorize": {"url": "https://provider.invalid/authorize"},
            "token": {"url": "https://provider.invalid/token", "refresh": {"keep_refresh_token": answer.keep_refresh_token}},
            "answer": answer.answer,
        },
        "examples": list(examples),
    }
    problems = Problems()
    mapping = parse_mapping("draft", document, file="draft", problems=problems)
    if mapping is None or problems:
        raise ValueError(f"the inferred answer section does not load: {'; '.join(str(p) for p in problems.items)}")
    return mapping


def _expect(answer: AnswerDraft, sample: Sample, separator: str) -> dict[str, Any]:
    """What the gateway answers the platform for ``sample`` under the inferred rules."""
    mapping = answer_mapping(answer, [_example(sample, None)], separator)
    result = run_example(mapping, mapping.examples[0])
    if "error" in result:
        result = {key: value for key, value in result.items() if key in ("error", "error_description", "status")}
        if result.get("status") == 400:
            del result["status"]
    return result


def _example(sample: Sample, expect: Mapping[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": sample.name or f"{sample.role} answer"}
    if sample.role == "refresh":
        entry["grant"] = "refresh_token"
    if sample.status != 200:
        entry["status"] = sample.status
    if sample.content_type and sample.content_type != "application/json":
        entry["content_type"] = sample.content_type
    if sample.now is not None:
        entry["now"] = int(sample.now) if float(sample.now).is_integer() else sample.now
    entry["body"] = sample.document if sample.format == "json" else sample.text
    entry["expect"] = dict(expect) if expect is not None else {}
    return entry


def build_draft(
    name: str,
    *,
    platform: str | None = None,
    metadata: MetadataDraft | None = None,
    samples: Sequence[Sample] = (),
    like: tuple[str, Mapping[str, Any]] | None = None,
    authorize_url: str | None = None,
    token_url: str | None = None,
    now: float | None = None,
    extend: bool = False,
) -> Draft:
    """The mapping for provider ``name`` from what was given (see the module's docstring).

    ``like`` is the sibling's name and document (merged over its own bases); with ``extend`` the
    mapping says ``extends:`` it and writes only what differs, else it is a copy.
    """
    prefix = env_prefix(name)
    draft = Draft({})
    credentials = {
        "platform": {"client_id": f"${{{prefix}_PLATFORM_CLIENT_ID}}", "client_secret": f"${{{prefix}_PLATFORM_CLIENT_SECRET}}"},
        "upstream": {"client_id": f"${{{prefix}_CLIENT_ID}}", "client_secret": f"${{{prefix}_CLIENT_SECRET}}"},
    }
    document: dict[str, Any]
    base: Mapping[str, Any] = {}
    if like is not None and extend:
        other, base = like
        document = {"extends": other, **copy.deepcopy(credentials)}
        draft.notes[("extends",)] = f"everything not written here is {other}'s, its about: too until this file has its own"
    elif like is not None:
        other, sibling = like
        document = _renamed(copy.deepcopy(dict(sibling)), env_prefix(other), prefix)
        document.pop("about", None)  # the sibling's sources are not this provider's
        _merge(document, credentials)
        draft.header.append(f"Copied from {other}.yaml (its comments stay there: read them) and changed where noted.")
    else:
        document = {"platform": {"profile": platform or "alexa", **credentials["platform"]}, "upstream": dict(credentials["upstream"])}
    if platform is not None:
        document.setdefault("platform", {})["profile"] = platform
    upstream: dict[str, Any] = document.setdefault("upstream", {})

    if metadata is not None:
        upstream.pop("discovery", None)
        _merge(upstream, metadata.upstream)
        draft.notes.update(metadata.notes)
    if authorize_url:
        upstream.setdefault("authorize", {})["url"] = authorize_url
    if token_url:
        upstream.setdefault("token", {})["url"] = token_url

    if samples:
        _apply_answers(draft, document, samples, like=like, base=base, extend=extend, now=now)
    elif like is None:
        upstream.setdefault("answer", {"format": "json"})
        draft.notes[("upstream", "answer", "format")] = (
            "RFC 6749 §5.1 JSON; no answer seen: run init again with --answer to infer it and write examples"
        )
    draft.document = _ordered(document)
    draft.variables = sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", repr(draft.document))))
    return draft


def _apply_answers(
    draft: Draft, document: dict[str, Any], samples: Sequence[Sample], *, like: tuple[str, Mapping[str, Any]] | None,
    base: Mapping[str, Any], extend: bool, now: float | None,
) -> None:
    """The answers' reading into ``document``: ``answer:``, ``scope_separator``,
    ``keep_refresh_token``, and one example per answer with the ``expect`` it gives."""
    upstream: dict[str, Any] = document["upstream"]
    answer = infer_answer(samples)
    upstream["answer"] = answer.answer
    draft.notes.update(answer.notes)
    if answer.scope_separator is not None:
        upstream["scope_separator"] = answer.scope_separator
    elif ("upstream", "scope_separator") in answer.notes:
        upstream.setdefault("scope_separator", " ")  # written, so that its note has a line
    refreshes_seen = any(s.role == "refresh" for s in samples)
    refresh = upstream.setdefault("token", {}).setdefault("refresh", {})
    if answer.keep_refresh_token:
        refresh["keep_refresh_token"] = True
    elif refreshes_seen:
        refresh.pop("keep_refresh_token", None)
    if not refresh:
        upstream["token"].pop("refresh")
    if not upstream["token"]:
        upstream.pop("token")
    errors_seen = any(s.role == "error" for s in samples)
    base_upstream = dict(base.get("upstream") or {})
    if extend:  # the base's answer keys the answers showed otherwise go back to their defaults
        base_answer = dict(base_upstream.get("answer") or {})
        if not errors_seen:
            base_answer.pop("error", None)  # no error answer: the base's reading stays
        _restore(upstream, {"answer": base_answer}, ("answer",))
        if answer.scope_seen:
            _restore(upstream, base_upstream, ("scope_separator",))
        base_refresh = dict((base_upstream.get("token") or {}).get("refresh") or {})
        if "keep_refresh_token" in base_refresh and refreshes_seen and not answer.keep_refresh_token:
            upstream.setdefault("token", {}).setdefault("refresh", {})["keep_refresh_token"] = None
    separator = str((upstream["scope_separator"] if "scope_separator" in upstream else base_upstream.get("scope_separator")) or " ")
    sibling_error = ((dict(like[1]).get("upstream") or {}).get("answer") or {}).get("error") if like is not None else None
    if not errors_seen and sibling_error is not None:
        answer = _with_sibling_errors(answer, sibling_error, [s for s in samples if s.role != "error"], separator, draft)
        if "error" in answer.answer and not extend:
            upstream["answer"]["error"] = copy.deepcopy(sibling_error)  # no error answer: the sibling's reading stays
        elif "error" not in answer.answer and extend:
            upstream["answer"]["error"] = None
    clock = time.time() if now is None else now
    timed = [s if s.now is not None or not answer.absolute_expiry else _with_now(s, s.received or clock) for s in samples]
    document["examples"] = [_example(s, _expect(answer, s, separator)) for s in timed]


def _with_sibling_errors(answer: AnswerDraft, error: Any, successes: Sequence[Sample], separator: str, draft: Draft) -> AnswerDraft:
    """The inferred answer with the sibling's error reading, unless that reading calls one of
    these token answers an error (a condition on a field they do not have): then the default's."""
    trial = dataclasses.replace(answer, answer={**answer.answer, "error": error})
    try:
        misread = [s for s in successes if "error" in _expect(trial, s, separator)]
    except ValueError:  # the sibling's error section does not load on its own
        misread = list(successes)
    if not misread:
        return trial
    draft.notes[("upstream", "answer", "error")] = (
        f"the sibling's error reading marks {misread[0].name or 'a token answer'} as an error: the default reading instead"
    )
    return answer


def _restore(section: dict[str, Any], base: Mapping[str, Any], keys: Sequence[str]) -> None:
    """``null`` in ``section`` for each key the base has under ``keys`` and ``section`` does not:
    under ``extends:`` a ``null`` puts the default back (a missing key would keep the base's)."""
    for key in keys:
        if key not in base:
            continue
        if key not in section:
            section[key] = None
        elif isinstance(section[key], dict) and isinstance(base[key], Mapping) and key != "map":
            # error.map merges code by code: the sibling's codes stay, the answers' are added
            _restore(section[key], base[key], list(base[key]))


def _with_now(sample: Sample, clock: float) -> Sample:
    return dataclasses.replace(sample, now=float(int(clock)))
