"""The reference tables of docs/configuration.md and docs/mapping-guide.md, made from the models (``gateway schema --docs``).

A document asks for a table with a marker, and ``gateway schema --docs`` writes the rows up to the
end marker::

    <!-- generated: gateway schema --docs (mapping upstream.token) -->
    <!-- end generated -->

The kind is ``mapping`` or ``gateway.yaml``; the path (none: the top of the file) names the mapping
of the file the table is about. A table lists that mapping's keys, and the keys of its own
mappings as dotted paths, except those with a table of their own anywhere. Each row is the key,
the values it takes, its default and its meaning: the model's type, default and docstring, so a
table can not say what the loader does not do.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.config.fields import bounds, inner
from gateway.config.models import ExpectFile, GatewayFile, MappingFile, ParamRulesFile

__all__ = ["DOCUMENTS", "KINDS", "stale", "rendered", "tables"]

#: The documents with generated tables, relative to the repository.
DOCUMENTS = ("docs/configuration.md", "docs/mapping-guide.md")
KINDS: dict[str, type[BaseModel]] = {"mapping": MappingFile, "gateway.yaml": GatewayFile}
_MARKER = re.compile(
    r"(<!-- generated: gateway schema --docs \((?P<kind>[\w.]+)(?: (?P<path>[\w.]+))?\) -->\n)(?P<body>.*?)(<!-- end generated -->)",
    re.S,
)
#: Mappings shown as one row: their keys are a small fixed set the meaning names.
_ONE_ROW = (ParamRulesFile, ExpectFile)


def _model(annotation: object) -> type[BaseModel] | None:
    kind = inner(annotation)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _values(info: FieldInfo) -> str:
    kind = inner(info.annotation)
    if get_origin(kind) is Literal:
        return " \\| ".join(f"`{choice}`" for choice in get_args(kind))
    if get_origin(kind) is list:
        return "list of text" if inner(get_args(kind)[0]) is str else "list"
    if get_origin(kind) is dict:
        return "text → text" if inner(get_args(kind)[1]) is str else "mapping"
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return "`{" + ", ".join(kind.model_fields) + "}`" if issubclass(kind, _ONE_ROW) else "mapping"
    low, high = bounds(info)
    names: dict[object, str] = {
        bool: "`true` \\| `false`", int: "whole number", float: "number", str: "text", datetime.date: "date (`YYYY-MM-DD`)"
    }
    name = names.get(kind, "any")
    if low is None:
        return name
    return f"{name}, {_number(low)}–{_number(high)}" if high is not None else f"{name} ≥ {_number(low)}"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if not value or value.strip() != value else f"`{value}`"
    return f"`{value}`"


def _rows(model: type[BaseModel], prefix: str, here: str, own: set[str]) -> Iterator[tuple[str, str, str, str]]:
    """(key, values, default, meaning) of ``model`` at ``here``, keys shown relative to the table."""
    for name, info in model.model_fields.items():
        path, key = f"{here}.{name}" if here else name, f"{prefix}{name}"
        if path in own:
            continue
        kind = inner(info.annotation)
        sub = _model(get_args(kind)[-1] if get_origin(kind) in (list, dict) else kind)
        meaning = (info.description or (sub.__doc__ if sub is not None else "") or "").replace("|", "\\|").replace("\n", " ")
        if get_origin(kind) in (list, dict) and (item := _model(get_args(kind)[-1])) is not None:
            step = "[]" if get_origin(kind) is list else ".<name>"
            yield f"`{key}`", "list" if step == "[]" else "mapping", _default(info), meaning
            yield from _rows(item, f"{key}{step}.", f"{path}{step}", own)
        elif (sub := _model(kind)) is not None and not issubclass(sub, _ONE_ROW):
            yield f"`{key}`", "mapping", _default(info), meaning
            yield from _rows(sub, f"{key}.", path, own)
        else:
            yield f"`{key}`", _values(info), _default(info), meaning


def _at(model: type[BaseModel], path: str) -> type[BaseModel]:
    for part in path.split(".") if path else ():
        kind = inner(model.model_fields[part].annotation)
        found = _model(get_args(kind)[-1] if get_origin(kind) in (list, dict) else kind)
        assert found is not None, path
        model = found
    return model


def tables(root: Path) -> list[tuple[str, str, str]]:
    """Every (document, kind, path) that asks for a table."""
    return [
        (name, match["kind"], match["path"] or "")
        for name in DOCUMENTS
        for match in _MARKER.finditer((root / name).read_text(encoding="utf-8"))
    ]


def table(kind: str, path: str, own: set[str]) -> str:
    rows = _rows(_at(KINDS[kind], path), "", path, own - {path})
    return "| key | values | default | meaning |\n|---|---|---|---|\n" + "".join(f"| {' | '.join(row)} |\n" for row in rows)


def rendered(root: Path, name: str) -> str:
    """The document ``name`` with its tables made anew."""
    own: dict[str, set[str]] = {}
    for _, kind, path in tables(root):
        own.setdefault(kind, set()).add(path)

    def fill(match: re.Match[str]) -> str:
        return match[1] + table(match["kind"], match["path"] or "", own[match["kind"]]) + match[5]

    return _MARKER.sub(fill, (root / name).read_text(encoding="utf-8"))


def stale(root: Path, *, write: bool) -> list[str]:
    """The documents whose tables differ from the models; with ``write``, rewritten."""
    found = []
    for name in DOCUMENTS:
        path = root / name
        if not path.is_file():
            continue
        text = rendered(root, name)
        if text != path.read_text(encoding="utf-8"):
            found.append(name)
            if write:
                path.write_text(text, encoding="utf-8")
    return found
