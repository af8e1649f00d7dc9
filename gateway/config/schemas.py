"""The JSON Schemas editors use, made from the models (:mod:`gateway.config.models`), and ``gateway schema``.

``mappings/schema.json`` (each mapping starts ``# yaml-language-server: $schema=schema.json``) and
``gateway.schema.json`` (referenced the same way by ``gateway.yaml`` and ``deploy/gateway.yaml``)
are written by ``gateway schema``; ``gateway schema --check`` fails when a committed one is stale.
The gateway itself validates with the models: the package ships no JSON copy.

The models' JSON Schema is draft 2020-12 as pydantic makes it, with what the YAML loader accepts
besides: any value may be ``null`` (the default), text may be a number (``client_id: 12345``), and a
number or a boolean may be the ``${VAR}`` that will hold it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gateway.config.models import GatewayFile, MappingFile

__all__ = ["SCHEMA_FILES", "json_schema", "render", "stale"]

#: Where each schema lives in the repository, and its model.
SCHEMA_FILES: dict[str, type[BaseModel]] = {"mappings/schema.json": MappingFile, "gateway.schema.json": GatewayFile}
_ENV = {"type": "string", "pattern": r"^\s*\$\{[^}]+\}\s*$"}
#: Free-form answers and their exact expectation: taken as written, so no leniency is added there.
_VERBATIM = {"ExpectFile"}
_WORDS = ("description", "default")


def _relax(node: Any) -> Any:
    """What the loader accepts besides the models' own types (see the module docstring)."""
    if isinstance(node, list):
        return [_relax(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _relax(value) for key, value in node.items() if key not in {"title", "properties"}}
    for bound, word in (("ge", "minimum"), ("le", "maximum")):  # a Field bound on a validated type
        if bound in result:
            result[word] = result.pop(bound)
    if "properties" in node:
        required = set(node.get("required", ()))
        result["properties"] = {
            name: _relax(schema) if name in required else _nullable(_relax(schema)) for name, schema in node["properties"].items()
        }
    kind = result.get("type")
    if kind == "string" and not {"enum", "const", "format"} & result.keys():  # a date is no number
        result["type"] = ["string", "number"]
    elif kind in {"integer", "number", "boolean"}:
        words = {key: result.pop(key) for key in _WORDS if key in result}
        return {**words, "anyOf": [result, _ENV]}
    return result


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``null`` means the default: the type, or null; the words stay outside for the editors."""
    words = {key: schema.pop(key) for key in _WORDS if key in schema}
    choices = schema.get("anyOf", [schema])
    return {**words, "anyOf": choices if {"type": "null"} in choices else [*choices, {"type": "null"}]}


def json_schema(model: type[BaseModel], file: str) -> dict[str, Any]:
    """The draft 2020-12 schema of ``model`` as committed at ``file``."""
    schema = model.model_json_schema()
    definitions = {name: value if name in _VERBATIM else _relax(value) for name, value in sorted(schema.pop("$defs", {}).items())}
    top = _relax(schema)
    if "extends" in top.get("properties", {}):
        top, definitions = _with_variants(top, definitions)
    relaxed: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://github.com/gateway/gateway/{file}",
        **top,
        "$defs": definitions,
    }
    return relaxed


#: The prefix of the definitions a variant is checked with: the same keys, none of them required.
_PARTIAL = "Partial"


def _with_variants(top: dict[str, Any], definitions: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A file that says ``extends:`` is merged over its base before it is validated, so it may leave
    out what the base gives (``upstream.client_id``, the URLs): it is checked against a copy of the
    definitions in which nothing is required; every other file against the models as they are."""

    def partial(node: Any) -> Any:
        if isinstance(node, list):
            return [partial(item) for item in node]
        if not isinstance(node, dict):
            return node
        result = {key: partial(value) for key, value in node.items() if key != "required"}
        if isinstance(result.get("$ref"), str):
            result["$ref"] = result["$ref"].replace("#/$defs/", f"#/$defs/{_PARTIAL}")
        return result

    words = {key: top.pop(key) for key in ("description",) if key in top}
    variant = {f"{_PARTIAL}{name}": partial(value) for name, value in definitions.items()}
    variant[f"{_PARTIAL}File"] = partial(top)
    checked = {**words, "if": {"required": ["extends"]}, "then": {"$ref": f"#/$defs/{_PARTIAL}File"}, "else": top}
    return checked, {**definitions, **variant}


def render(model: type[BaseModel], file: str) -> str:
    return json.dumps(json_schema(model, file), indent=2, ensure_ascii=False) + "\n"


def stale(root: Path, *, write: bool) -> list[str]:
    """The schema files under ``root`` that differ from the models; with ``write``, rewritten."""
    found = []
    for name, model in SCHEMA_FILES.items():
        path, text = root / name, render(model, name)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            found.append(name)
            if write:
                path.write_text(text, encoding="utf-8")
    return found
