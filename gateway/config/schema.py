"""The mapping vocabulary as a JSON Schema (``mappings/schema.json``), checked at load.

The schema is what editors complete and check (``# yaml-language-server: $schema=schema.json`` at
the top of each mapping) and what the loader validates every mapping document against, after the
typed reader (:mod:`gateway.config.reader`) has read it. Each schema error becomes ``file:line: path:
message``, at the line of the offending key or item (``LineDict.key_lines``,
``LineList.item_lines``). The reader already reports unknown keys, wrong types and bad choices at
those same lines, so a schema problem on a line that already has one is dropped: one mistake,
one problem. The schema and the reader are kept in agreement by ``tests/unit/test_schema.py``.

The schema ships inside the package (``gateway/config/schema.json`` is ``mappings/schema.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from gateway.config.yamlfile import LineDict, LineList, Problems

__all__ = ["load_schema", "validator", "schema_problems", "check_mapping"]


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("gateway.config").joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def validator() -> Draft202012Validator:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _dotted(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _locate(document: Any, path: list[Any]) -> tuple[Any, int]:
    """The value at ``path`` and its line: the key's line for a value, the item's line for an item."""
    node, line = document, getattr(document, "line", 0)
    for part in path:
        if isinstance(node, LineDict) and isinstance(part, str):
            line = node.line_of(part)
        elif isinstance(node, LineList) and isinstance(part, int):
            line = node.line_of(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return node, line


def _problems_of(error: ValidationError, document: Any) -> Iterator[tuple[int, str]]:
    path = list(error.absolute_path)
    node, line = _locate(document, path)
    where = _dotted(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(node, dict) and error.validator_value is False:
        for key in sorted(set(node) - set(schema.get("properties", {}))):
            key_line = node.line_of(key) if isinstance(node, LineDict) else line
            yield key_line, f"{_dotted([*path, key])}: unknown key"
        return
    if error.validator == "required" and isinstance(node, LineDict):
        line = node.line  # the reader reports a missing key at the line its mapping starts
    yield line, f"{where or 'file'}: {error.message}"


def schema_problems(document: Any) -> list[tuple[int, str]]:
    """Every ``(line, message)`` the schema finds in a loaded mapping document, one per line."""
    if document is None:
        return []
    found: dict[int, str] = {}
    for error in sorted(validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        for line, message in _problems_of(error, document):
            found.setdefault(line, message)
    return sorted(found.items())


def check_mapping(document: Any, file: str, problems: Problems) -> None:
    """Add the schema's problems for ``file`` on lines where the reader found none."""
    reported = {problem.line for problem in problems.items if problem.file == file}
    for line, message in schema_problems(document):
        if line not in reported:
            problems.add(file, line, message)
