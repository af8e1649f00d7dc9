"""``extends:``: a mapping written as another mapping of its folder plus what differs.

A file that says ``extends: google`` is read as ``google.yaml`` of the same folder (itself perhaps
extending another, never in a cycle) with the file deep-merged over it: mappings merge key by key,
a list or a value replaces what the base had (so the base's ``examples:`` stay only where the file
gives none), and ``null`` puts the default back. A variant that only adds scopes is a few lines, and
it inherits every fix of its base.

Every merged value keeps the file and line it was written at, so a problem in an inherited value
names the base's file. The bases are read with their unset ``${VAR}`` allowed: a variable is
required only where its value survives the merge (a variant with credentials of its own does not
need its base's).

:func:`load_mapping_document` is how a mapping file is read (the loader, ``gateway check``, the
tests); :func:`gateway.config.mapping.parse_mapping` then builds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gateway.config.models import MAPPING_NAME
from gateway.config.yamlfile import Interpolated, LineDict, LineList, Problems, load_yaml

__all__ = ["load_mapping_document", "merge"]

def load_mapping_document(
    file: Path, problems: Problems, *, env: Mapping[str, str] | None = None, missing_env_ok: bool = False
) -> Any:
    """The document of the mapping ``file`` as :func:`~gateway.config.yamlfile.load_yaml` reads it,
    merged over its ``extends:`` bases; ``None`` when it or a base can not be read (said in ``problems``)."""
    document = load_yaml(file, problems, env=env, missing_env_ok=missing_env_ok)
    merged = _resolve(document, file, problems, env, ())
    if merged is not document and not missing_env_ok:
        for value, where, line in _inherited_strings(merged, str(file)):
            for variable in getattr(value, "missing", ()):
                problems.add(where, line, f"environment variable {variable} is not set")
    return merged


def _resolve(
    document: Any, file: Path, problems: Problems, env: Mapping[str, str] | None, chain: tuple[Path, ...]
) -> Any:
    if not isinstance(document, LineDict) or "extends" not in document or document["extends"] is None:
        return document
    name, line, here = document["extends"], document.line_of("extends"), str(file)
    document.bases = ()
    if isinstance(name, bool) or not isinstance(name, (str, int, float)):
        return document  # not text at all: the model says so
    name = str(name)  # as any text: a number is its text
    if not MAPPING_NAME.fullmatch(name):
        problems.add(
            here, line, f"extends: must name a mapping of the same folder by its file stem (like google), not {name!r}"
        )
        return document
    base = file.parent / f"{name}.yaml"
    seen = (*chain, file)
    resolved_seen = [path.resolve() for path in seen]
    if base.resolve() in resolved_seen:
        cycle = [path.stem for path in seen[resolved_seen.index(base.resolve()) :]] + [base.stem]
        problems.add(here, line, f"extends: a cycle: {' → '.join(cycle)}")
        return None
    if not base.is_file():
        problems.add(here, line, f"extends: no mapping {name!r} in {file.parent} (no file {base.name})")
        return None
    before = len(problems.items)
    loaded = load_yaml(base, problems, env=env, missing_env_ok=True)
    if loaded is None and len(problems.items) > before:
        problems.add(here, line, f"extends: the base {base} can not be read")
        return None
    if not isinstance(loaded, LineDict):
        problems.add(here, line, f"extends: the base {base} is not a mapping")
        return None
    resolved = _resolve(loaded, base, problems, env, seen)
    if resolved is None:
        return None
    merged = merge(resolved, document)
    merged.bases = (str(base), *(resolved.bases or ()))
    return merged


def merge(base: LineDict, over: LineDict) -> LineDict:
    """``over`` deep-merged over ``base``: mappings key by key, anything else replaces.

    The result is a new :class:`LineDict` that knows, per key, the line and file it came from.
    """
    result = LineDict()
    result.line, result.file = over.line, over.file
    result.key_lines = {}
    key_files: dict[str, str] = {}
    for source in (base, over):
        for key, value in source.items():
            previous = result.get(key)
            if source is over and isinstance(previous, LineDict) and isinstance(value, LineDict):
                value = merge(previous, value)
            result[key] = value
            result.key_lines[key] = source.line_of(key)
            key_files[key] = source.file_of(key)
    result.key_files = key_files
    return result


def _inherited_strings(node: Any, own: str) -> Iterator[tuple[Interpolated, str, int]]:
    """Each text value of a merged document written in another file than ``own``, with its file and line."""
    if isinstance(node, LineDict):
        for key, value in node.items():
            if isinstance(value, Interpolated) and node.file_of(key) != own:
                yield value, node.file_of(key), node.line_of(key)
            else:
                yield from _inherited_strings(value, own)
    elif isinstance(node, LineList):
        for index, value in enumerate(node):
            if isinstance(value, Interpolated) and node.file != own:
                yield value, node.file, node.line_of(index)
            else:
                yield from _inherited_strings(value, own)
