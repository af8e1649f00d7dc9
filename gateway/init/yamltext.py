"""A mapping document as YAML text, with a comment at the lines where ``gateway init`` chose.

PyYAML writes no comments, and the comments are the point: each says what was chosen and why,
at the line it concerns. So this writes the block style of the shipped mappings itself: nested
mappings as blocks, short lists and every ``examples:`` body and ``expect`` in flow style (JSON,
which YAML reads as it is), scalars quoted by PyYAML only where YAML would misread them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

__all__ = ["Notes", "Path", "render", "scalar"]

#: Where a value is in the document: keys and list indices from the top.
Path = tuple[str | int, ...]
#: The comment for the line of each path.
Notes = Mapping[Path, str]


def scalar(value: Any) -> str:
    """One scalar as YAML reads it back unchanged (``"0"`` stays text, ``null`` stays null)."""
    if isinstance(value, str):
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
        text = text.removesuffix("\n").removesuffix("\n...").removesuffix("\n")
        return text if "\n" not in text and _reads_back(text, value) else _quoted(value)
    return _flow(value)


def _quoted(value: Any) -> str:
    """YAML's own double-quoted escapes, on one line (JSON's surrogate pairs PyYAML reads apart)."""
    text = yaml.safe_dump(value, default_flow_style=True, default_style='"', allow_unicode=False, width=1 << 30)
    return text.removesuffix("\n").removesuffix("\n...").removesuffix("\n")


def _reads_back(text: str, value: Any) -> bool:
    try:
        return bool(yaml.safe_load(f"- {text}") == [value])
    except yaml.YAMLError:
        return False


def _flow(value: Any) -> str:
    """A value on one line: JSON, which is YAML's flow style (escaped where YAML would read a
    character otherwise: a NEL is a line break to YAML, a control character an error)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if _reads_back(text, value) else _quoted(value)


def _comment(notes: Notes, path: Path) -> str:
    note = notes.get(path)
    return f"  # {' '.join(note.split())}" if note else ""


def _key(key: str | int) -> str:
    return scalar(str(key))


def _lines(value: Mapping[str, Any], notes: Notes, path: Path, indent: int, flow_keys: frozenset[str]) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for key, item in value.items():
        here = (*path, key)
        head = f"{pad}{_key(key)}:"
        if isinstance(item, Mapping) and item and key not in flow_keys:
            out.append(head + _comment(notes, here))
            out += _lines(item, notes, here, indent + 2, flow_keys)
        elif isinstance(item, Sequence) and not isinstance(item, str) and item and any(isinstance(i, Mapping) for i in item):
            out.append(head + _comment(notes, here))
            for index, entry in enumerate(item):
                out += _entry(entry, notes, (*here, index), indent + 2, flow_keys)
        elif isinstance(item, (Mapping, list, tuple)):
            out.append(f"{head} {_flow(item)}{_comment(notes, here)}")
        else:
            out.append(f"{head} {scalar(item)}{_comment(notes, here)}")
    return out


def _entry(entry: Any, notes: Notes, path: Path, indent: int, flow_keys: frozenset[str]) -> list[str]:
    """One list item: ``- key: value`` and the rest of its keys under it."""
    pad = " " * indent
    if not isinstance(entry, Mapping) or not entry:
        return [f"{pad}- {_flow(entry) if isinstance(entry, (Mapping, list)) else scalar(entry)}{_comment(notes, path)}"]
    body = _lines(entry, notes, path, indent + 2, flow_keys)
    body[0] = f"{pad}- {body[0].lstrip()}"
    return body


def render(document: Mapping[str, Any], notes: Notes, *, header: Sequence[str] = (), flow_keys: frozenset[str] = frozenset()) -> str:
    """``document`` as YAML text: ``header`` lines as comments on top, each note at its path's line.

    ``flow_keys`` are keys whose mapping values stay on one line (``body``, ``expect``).
    """
    lines = [f"# {line}".rstrip() for line in header]
    lines += _lines(document, notes, (), 0, flow_keys)
    return "\n".join(lines) + "\n"
