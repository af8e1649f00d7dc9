"""YAML that remembers where each value came from, with ``${VAR}`` taken from the environment.

Every problem the gateway finds in a config must be reported as ``file:line: message`` and all at
once, so an operator fixes a file in one pass. PyYAML's safe loader knows each node's line; this
module keeps it: mappings load as :class:`LineDict` (line of each key), sequences as
:class:`LineList` (line of each item), each with the file it was read from (a mapping merged over
its ``extends:`` base holds values of both files: :mod:`gateway.config.extends`).

``${VAR}`` and ``${VAR:-default}`` in any string value are replaced from the environment while the
file loads, so secrets never sit in files. A missing variable without a default is a problem
that names the file, the line and the variable. ``$${`` stands for a literal ``${``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

__all__ = ["Interpolated", "LineDict", "LineList", "Problem", "Problems", "ConfigError", "load_yaml"]

_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a config file, at a line (1-based; 0 when the whole file is meant)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


@dataclass
class Problems:
    """Collects problems so that loading goes on and reports every one at the end."""

    items: list[Problem] = field(default_factory=list)

    def add(self, file: str, line: int, message: str) -> None:
        self.items.append(Problem(file, line, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(sorted(set(self.items)))


class ConfigError(Exception):
    """The config can not be used; ``problems`` lists every reason, each with file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class Interpolated(str):
    """Text that took values from the environment.

    ``as_template`` is the same text with the environment's braces doubled, so a secret that
    contains ``{`` or ``}`` never reads as a template placeholder in ``params.add``.
    ``unresolved`` is true when a variable was missing (a problem already, or ``gateway check``
    put ``<VAR>`` there): such a value is not judged (it is not the value that will be served).
    """

    as_template: str
    unresolved: bool
    #: The variables that were not set (their problem is said where the value is used).
    missing: tuple[str, ...] = ()


class LineDict(dict[str, Any]):
    """A YAML mapping that knows its file, its own line and the line (and, once merged, the file) of each key."""

    line: int = 0
    key_lines: dict[str, int]
    file: str = ""
    #: Keys written in another file than this mapping's own (inherited from an ``extends:`` base).
    key_files: Mapping[str, str] = MappingProxyType({})
    #: ``None``: ``extends:`` not looked at; else the base files merged under this document, nearest first.
    bases: tuple[str, ...] | None = None

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def file_of(self, key: str) -> str:
        return self.key_files.get(key, self.file)


class LineList(list[Any]):
    """A YAML sequence that knows its file, its own line and the line of each item."""

    line: int = 0
    item_lines: list[int]
    file: str = ""

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def _interpolate(text: str, env: Mapping[str, str], missing: list[str], *, braces: bool = False) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        if name in env:
            value = env[name]
        elif default is not None:
            value = default
        else:
            missing.append(name)
            return ""
        return value.replace("{", "{{").replace("}", "}}") if braces else value

    return _ENV_REF.sub(replace, text)


def load_yaml(
    path: Path, problems: Problems, *, env: Mapping[str, str] | None = None, missing_env_ok: bool = False
) -> Any:
    """Load ``path``; syntax errors and missing variables go to ``problems``; ``None`` if unusable.

    With ``missing_env_ok`` a missing variable becomes the text ``<VAR>`` instead of a problem:
    ``gateway check`` validates mappings it does not serve without their secrets.
    """
    environ = os.environ if env is None else env
    name = str(path)

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Loader, node: yaml.MappingNode) -> LineDict:
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        result.file = name
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                problems.add(name, key_node.start_mark.line + 1, f"keys must be text, not {key!r}")
                continue
            if key in result:
                problems.add(name, key_node.start_mark.line + 1, f"{key!r} is given twice")
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(loader: Loader, node: yaml.SequenceNode) -> LineList:
        result = LineList(loader.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        result.file = name
        return result

    def construct_str(loader: Loader, node: yaml.ScalarNode) -> str:
        value = loader.construct_scalar(node)
        assert isinstance(value, str)
        if "${" not in value:
            return value
        missing: list[str] = []
        result = _interpolate(value, environ, missing)
        unresolved = bool(missing)  # reported below, or left to the secrets `gateway check` does not have
        environ_now: Mapping[str, str]
        if unresolved and missing_env_ok:
            environ_now = {**environ, **{variable: f"<{variable}>" for variable in missing}}
            result = _interpolate(value, environ_now, [])
        else:
            environ_now = environ
            for variable in missing:
                problems.add(name, node.start_mark.line + 1, f"environment variable {variable} is not set")
        text = Interpolated(result)
        text.as_template = _interpolate(value, environ_now, [], braces=True)
        text.unresolved = unresolved
        text.missing = tuple(missing)
        return text

    def construct_timestamp(loader: Loader, node: yaml.ScalarNode) -> object:
        """A date or time as YAML reads one; one that is no real day (``2026-13-01``) stays text, for the models to refuse."""
        try:
            return loader.construct_yaml_timestamp(node)
        except ValueError:
            return construct_str(loader, node)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_timestamp)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    Loader.add_constructor("tag:yaml.org,2002:str", construct_str)

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add(name, 0, f"can not be read: {exc.strerror or exc}")
        return None
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader derives from SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problems.add(name, line, f"not valid YAML: {exc.problem or exc}")
    except yaml.YAMLError as exc:
        problems.add(name, 0, f"not valid YAML: {exc}")
    return None
