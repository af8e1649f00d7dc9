"""Typed reading of one YAML section, reporting every problem as ``file:line: message``.

A :class:`Section` wraps a :class:`~gateway.config.yamlfile.LineDict`. Each getter checks one key's
type and returns a safe placeholder when it is wrong, so that loading continues and the operator
sees every problem of every file at once. :meth:`Section.finish` reports keys that nobody asked
for: a typo is a load error, never a silently ignored setting (Kong's lesson).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

import jmespath
import jmespath.exceptions
import jmespath.parser

from gateway.config.yamlfile import LineDict, LineList, Problems

__all__ = ["Section", "is_loopback_host"]

T = TypeVar("T")
_MISSING: Any = object()
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback_host(host: str | None) -> bool:
    """True for the hosts where plain http is tolerable (RFC 8252 §7.3, local development).

    ``127.0.0.1.evil.example`` is not one: only ``localhost`` and real loopback addresses are.
    """
    if host is None:
        return False
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_url(value: str) -> SplitResult | None:
    """``urlsplit``, or ``None`` where it raises (``https://[::1`` is a problem, not a crash)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    return parts


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    for kind, name in ((dict, "a mapping"), (list, "a list"), (str, "text"), (int, "a number"), (float, "a number")):
        if isinstance(value, kind):
            return name
    return "empty" if value is None else type(value).__name__


class Section:
    """One mapping of a YAML file, read key by key."""

    def __init__(self, data: Any, *, file: str, problems: Problems, where: str = "", line: int = 0) -> None:
        self.file = file
        self.problems = problems
        self.where = where
        if data is None:
            data = LineDict()
            data.line = line
            data.key_lines = {}
        elif not isinstance(data, LineDict):
            problems.add(file, getattr(data, "line", line), f"{where or 'the file'} must be a mapping, not {_type_name(data)}")
            data = LineDict()
            data.line = line
            data.key_lines = {}
        self.data: LineDict = data
        self._read: set[str] = set()

    # -- plumbing -----------------------------------------------------------------------------
    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def line(self, key: str | None = None) -> int:
        return self.data.line_of(key) if key is not None else self.data.line

    def error(self, key: str | None, message: str) -> None:
        self.problems.add(self.file, self.line(key), f"{self.path(key) if key else self.where or 'file'}: {message}")

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                self.error(None, f"{self.path(key)} is required")
            return default
        return self.data[key]

    def finish(self) -> None:
        """Report keys present in the file that no getter asked for (typos, misplaced settings)."""
        for key in self.data:
            if key not in self._read:
                known = ", ".join(sorted(self._read)) or "none"
                self.error(key, f"unknown key (known here: {known})")

    # -- getters ------------------------------------------------------------------------------
    def text(self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] | None = None) -> Any:
        value = self._get(key, default)
        if value is _MISSING:  # required and missing: already reported
            return ""
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(key, f"must be text, not {_type_name(value)}")
            return default if default is not _MISSING else ""
        if not isinstance(value, str):
            value = str(value)
        if choices is not None and value not in choices:
            self.error(key, f"must be one of {', '.join(choices)}, not {value!r}")
            return default if default is not _MISSING else choices[0]
        return value

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self._get(key, default)
        if value is _MISSING:  # required and missing: already reported
            return 0
        if value is default:
            return value
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            value = int(value)  # an interpolated ${VAR} arrives as text
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be a whole number, not {_type_name(value)}")
            return default if default is not _MISSING else 0
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.error(key, f"must be between {minimum} and {maximum}, not {value}")
        return value

    def number(self, key: str, default: Any = _MISSING, *, minimum: float = 0.0, maximum: float | None = None) -> Any:
        value = self._get(key, default)
        if value is _MISSING:  # required and missing: already reported
            return 0.0
        if value is default:
            return value
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number):
            self.error(key, f"must be a finite number, not {_type_name(value) if number is None else value}")
            return default if default is not _MISSING else minimum
        if number < minimum or (maximum is not None and number > maximum):
            self.error(key, f"must be between {minimum} and {maximum}, not {number}")
        return number

    def flag(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is _MISSING:  # required and missing: already reported
            return False
        if value is default:
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, not {_type_name(value)}")
            return default if default is not _MISSING else False
        return value

    def url(self, key: str, default: Any = _MISSING, *, allow_http_loopback: bool = True) -> Any:
        """An absolute http(s) URL; plain http only toward a loopback host."""
        value = self.text(key, default)
        if value is default or not value or getattr(value, "unresolved", False):
            return value
        parts = split_url(value)
        if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
            self.error(key, f"must be an absolute http(s) URL, not {value!r}")
        elif parts.scheme == "http" and not (allow_http_loopback and is_loopback_host(parts.hostname)):
            self.error(key, f"must use https (plain http only for localhost), not {value!r}")
        elif parts.fragment:
            self.error(key, f"must not have a #fragment: {value!r}")
        return value

    def expression(self, key: str, default: Any = _MISSING) -> jmespath.parser.ParsedResult | None:
        """A JMESPath expression, compiled here, once, at load (a bad one is a load error)."""
        text = self.text(key, default)
        if text is None:
            return None
        return compile_jmespath(text, lambda message: self.error(key, message))

    def raw(self, key: str) -> Any:
        """The value as YAML gave it, unchecked (example bodies, free-form data)."""
        self._read.add(key)
        return self.data.get(key)

    def section(self, key: str) -> Section:
        value = self._get(key, None)
        return Section(value, file=self.file, problems=self.problems, where=self.path(key), line=self.line(key))

    def sequence(self, key: str, item: Callable[[Any, int], T | None] | None = None) -> list[Any]:
        value = self._get(key, None)
        if value is None:
            return []
        if not isinstance(value, LineList):
            value_list = LineList([value])
            value_list.line = self.line(key)
            value_list.item_lines = [self.line(key)]
            value = value_list
        if item is None:
            return list(value)
        result = []
        for index, element in enumerate(value):
            converted = item(element, value.line_of(index))
            if converted is not None:
                result.append(converted)
        return result

    def item_line(self, key: str, index: int) -> int:
        """The line of item ``index`` of the list at ``key`` (or of the key itself)."""
        value = self.data.get(key)
        return value.line_of(index) if isinstance(value, LineList) else self.line(key)

    def entry_line(self, key: str, entry: str) -> int:
        """The line of ``entry`` in the mapping at ``key`` (or of the key itself)."""
        value = self.data.get(key)
        return value.line_of(entry) if isinstance(value, LineDict) else self.line(key)

    def str_list(self, key: str) -> list[str]:
        def text(element: Any, line: int) -> str | None:
            if isinstance(element, bool) or not isinstance(element, (str, int, float)):
                self.problems.add(self.file, line, f"{self.path(key)}: items must be text, not {_type_name(element)}")
                return None
            return str(element)

        return self.sequence(key, text)

    def str_map(self, key: str) -> dict[str, str]:
        """A mapping of text to text (numbers are taken as their text)."""
        sub = self.section(key)
        result: dict[str, str] = {}
        for name in sub.items():
            value = sub.text(name)
            if value is not None:
                result[name] = value
        sub.finish()
        return result

    def items(self) -> Iterator[str]:
        return iter(list(self.data.keys()))



def compile_jmespath(text: str, report: Callable[[str], None]) -> jmespath.parser.ParsedResult | None:
    try:
        return jmespath.compile(text)
    except jmespath.exceptions.JMESPathError as exc:
        report(f"bad JMESPath {text!r}: {str(exc).splitlines()[0]}")
        return None
