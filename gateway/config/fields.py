"""The value types of the config files and the check that turns pydantic's errors into ``file:line`` problems.

The models of :mod:`gateway.config.models` are built from these types. They keep the strictness an
operator relies on where pydantic is lax: a boolean is ``true``/``false`` only (``yes``, ``1`` and
``on`` are mistakes), a number is a YAML number or the text of one (``"2_5"`` is a mistake, not 25),
a whole number is not ``2.5``, and text may be a number (``client_id: 12345``). ``null`` means the
default. Text keeps its :class:`~gateway.config.yamlfile.Interpolated` type, so a value whose
environment variable ``gateway check`` could not resolve is known as such and not judged.

:func:`validate` reports *every* error of a document at once, each at the line of its key or item
(the ``loc`` path of the error, looked up in the :class:`LineDict` / :class:`LineList` the loader
made). For the checks only the builders can make, it then returns a model in which each wrong
value is replaced by its default, and :class:`Checked` keeps the paths that were wrong, so that no
later check reports the same mistake again.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WrapValidator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from gateway.config.yamlfile import Interpolated, LineDict, LineList, Problems

__all__ = [
    "FileModel", "Text", "Whole", "Number", "Flag", "Day", "TextList", "TextMap", "Loc", "Checked", "validate", "dotted",
    "line_at", "where_at", "bounds", "field_at", "inner",
]

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]
_INTEGER = re.compile(r"\s*-?[0-9]+\s*")
#: A decimal number as YAML writes one (no ``_`` separators, no ``0x``): what a ``${VAR}`` may hold.
_DECIMAL = re.compile(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*")


def _kind(value: object) -> str:
    """How a problem names what it found instead."""
    if isinstance(value, bool):
        return "true/false"
    for kind, name in ((dict, "a mapping"), (list, "a list"), (str, "text"), (int, "a number"), (float, "a number")):
        if isinstance(value, kind):
            return name
    return "empty" if value is None else type(value).__name__


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("gateway", "{message}", {"message": message})


def _text(value: object, handler: Callable[[object], object]) -> object:
    if isinstance(value, str):
        return value  # unchanged: an Interpolated keeps as_template and unresolved
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _problem(f"must be text, not {_kind(value)}")
    return handler(str(value))


def _whole(value: object) -> object:
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)  # an interpolated ${VAR} arrives as text
    if isinstance(value, bool) or not isinstance(value, int):
        raise _problem(f"must be a whole number, not {_kind(value)}")
    return value


def _number(value: object) -> object:
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _problem(f"must be a finite number, not {_kind(value)}" + (f" {value!r}" if isinstance(value, str) else ""))
    if not math.isfinite(value):
        raise _problem(f"must be a finite number, not {value}")
    return float(value)


def _flag(value: object) -> object:
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise _problem(f"must be true or false, not {_kind(value)}")
    return value


_ISO_DAY = re.compile(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*")


def _day(value: object) -> object:
    """An ISO 8601 calendar date: YAML reads ``2026-12-07`` as one; quoted (or from ``${VAR}``) it is text."""
    if isinstance(value, datetime.datetime):
        raise _problem(f"must be a date (YYYY-MM-DD), not a time {value.isoformat()!r}")
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and _ISO_DAY.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _problem(f"must be a date (YYYY-MM-DD), not {_kind(value)}" + (f" {value!r}" if isinstance(value, str) else ""))


def _listed(value: object) -> object:
    """One value where a list is expected is a list of one (``redirect_uris: https://…``)."""
    return value if isinstance(value, list) else [value]


#: Text; a number is taken as its text.
Text = Annotated[str, WrapValidator(_text)]
#: A whole number (or the text of one, from ``${VAR}``).
Whole = Annotated[int, BeforeValidator(_whole)]
#: A finite number (or the text of a decimal one).
Number = Annotated[float, BeforeValidator(_number)]
#: ``true`` or ``false`` (the text of one too, from ``${VAR}``): never ``yes``, ``1`` or ``on``.
Flag = Annotated[bool, BeforeValidator(_flag)]
#: A calendar date, ``2026-12-07`` (ISO 8601; never a number of seconds).
Day = Annotated[datetime.date, BeforeValidator(_day)]
#: A list of text; one value stands for a list of one.
TextList = Annotated[list[Text], BeforeValidator(_listed)]
#: A mapping of text to text.
TextMap = dict[str, Text]


class FileModel(BaseModel):
    """A mapping of a config file: unknown keys are mistakes, ``null`` means the default, nothing changes later."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False, use_attribute_docstrings=True)

    #: Keys whose ``null`` means something of its own (not the default): kept as ``None``.
    keep_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: object) -> object:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None or key in cls.keep_null}
        if data is not None and not isinstance(data, BaseModel):
            raise _problem(f"must be a mapping, not {_kind(data)}")
        return data


# -- where an error is, and what is there ---------------------------------------------------------
def dotted(loc: Iterable[str | int]) -> str:
    """``upstream.token.params`` / ``examples[0].expect``: a path as the problems name it."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def where_at(document: object, loc: Loc) -> tuple[str, int]:
    """The file and line of the value at ``loc``: its key's, its item's, else the nearest mapping's.

    The file is empty where the document does not know it (a document not read by the loader);
    it differs from the document's own for a value inherited from an ``extends:`` base.
    """
    node, line, file = document, getattr(document, "line", 0), getattr(document, "file", "")
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str):
            line, file = node.line_of(part), node.file_of(part)
        elif isinstance(node, LineList) and isinstance(part, int):
            line, file = node.line_of(part), node.file
        try:
            node = node[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            break
    return file, line


def line_at(document: object, loc: Loc) -> int:
    """The line of the value at ``loc`` (:func:`where_at`)."""
    return where_at(document, loc)[1]


def inner(annotation: object) -> object:
    """The model, list or mapping type behind ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or str(origin) == "<class 'types.UnionType'>":
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        else:
            return annotation


def field_at(model: type[BaseModel], loc: Loc) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model that holds the last key of ``loc`` and that key's field (``None`` where there is none)."""
    holder: object = model
    info: FieldInfo | None = None
    for part in loc:
        annotation: object
        if isinstance(holder, type) and issubclass(holder, BaseModel) and isinstance(part, str):
            info = holder.model_fields.get(part)
            if info is None:
                return holder, None
            annotation = info.annotation
            parent: type[BaseModel] | None = holder
        elif get_origin(holder) in (list, dict):
            annotation = get_args(holder)[-1]
            parent, info = None, None
        else:
            return None, None
        holder = inner(annotation)
    return (parent if loc else None), info


def _rules(annotation: object) -> Iterator[object]:
    """The constraints inside an annotation (``Annotated[Whole, Field(ge=1)] | None`` has ``Ge(1)``)."""
    if get_origin(annotation) is Annotated:
        for rule in get_args(annotation)[1:]:
            yield from rule.metadata if isinstance(rule, FieldInfo) else (rule,)
    for arg in get_args(annotation):
        yield from _rules(arg)


def bounds(info: FieldInfo | None) -> tuple[float | None, float | None]:
    """The least and greatest value a number field takes (``None``: no such bound)."""
    low = high = None
    for rule in [*info.metadata, *_rules(info.annotation)] if info is not None else ():
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge
        elif isinstance(rule, annotated_types.Le):
            high = rule.le
    return low, high  # type: ignore[return-value]


def _message(model: type[BaseModel], error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    where = dotted(loc) or "file"
    kind, given, context = error["type"], error["input"], error.get("ctx", {})
    if kind == "missing":
        return f"{where} is required"
    if kind == "extra_forbidden":
        holder, _ = field_at(model, loc)
        known = ", ".join(sorted(holder.model_fields)) if holder is not None else "none"
        return f"{where}: unknown key (known here: {known})"
    if kind == "literal_error":
        choices = ", ".join(re.findall(r"'([^']*)'", str(context.get("expected", ""))))
        return f"{where}: must be one of {choices}, not {given!r}"
    if kind in {"greater_than_equal", "less_than_equal"}:
        low, high = bounds(field_at(model, loc)[1])
        return f"{where}: must be between {low} and {high}, not {given}"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"{where}: must be a mapping, not {_kind(given)}"
    if kind == "list_type":
        return f"{where}: must be a list, not {_kind(given)}"
    if kind == "too_short":
        return f"{where}: must have at least {context.get('min_length', 1)} item(s)"
    return f"{where}: {error['msg']}"


# -- validation ---------------------------------------------------------------------------------------
def _stand_in(kind: object) -> object:
    """A valid value of ``kind`` for a missing required key (reported already), so that building goes on."""
    if isinstance(kind, type) and issubclass(kind, BaseModel) or get_origin(kind) is dict:
        return {}
    if get_origin(kind) is list:
        return []
    if kind is bool:
        return False
    if kind in (int, float):
        return 0
    text = Interpolated("")  # empty, and never judged by the builders
    text.as_template, text.unresolved = "", True
    return text


def _plain(value: object) -> object:
    """A copy that :func:`_repair` may change (the document keeps its lines for the messages)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _repair(data: object, model: type[BaseModel], errors: list[ErrorDetails]) -> object:
    """``data`` with each wrong value taken out (its default applies) and each missing one filled."""
    for error in sorted(errors, key=lambda e: [str(part) for part in e["loc"]], reverse=True):
        loc = tuple(error["loc"])
        if not loc:
            return {}
        node: Any = data
        try:
            for part in loc[:-1]:
                node = node[part]
        except (KeyError, IndexError, TypeError):
            continue
        last = loc[-1]
        if error["type"] == "missing" and isinstance(node, dict):
            info = field_at(model, loc)[1]
            node[last] = _stand_in(inner(info.annotation) if info is not None else str)
        elif isinstance(node, dict) and last in node:
            del node[last]
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            del node[last]
    return data


@dataclass
class Checked:
    """What :func:`validate` found in one document: where it is, and the paths already reported."""

    file: str
    document: object
    problems: Problems
    wrong: set[Loc] = field(default_factory=set)

    def _reported(self, loc: Loc) -> bool:
        """``loc``, or what holds it, was wrong already: whatever is said of it now would follow from that."""
        return any(loc[: len(bad)] == bad for bad in self.wrong)

    def wrong_at(self, *locs: Loc) -> bool:
        """Something at or under one of ``locs`` was wrong: a check that reads it would only follow from that."""
        return any(bad[: len(loc)] == loc for loc in locs for bad in self.wrong)

    def at(self, loc: Loc) -> tuple[str, int]:
        """The file and line of ``loc`` (the base's file for a value an ``extends:`` base gave)."""
        file, line = where_at(self.document, loc)
        return file or self.file, line

    def error(self, loc: Loc, message: str) -> None:
        """Report ``path: message`` at the line of ``loc``."""
        if not self._reported(loc):
            self.problems.add(*self.at(loc), f"{dotted(loc) or 'file'}: {message}")

    def required(self, loc: Loc) -> None:
        """Report that the key at ``loc`` is missing, at the line of the mapping that lacks it."""
        if not self._reported(loc):
            self.problems.add(*self.at(loc), f"{dotted(loc)} is required")


def validate(model: type[M], document: object, checked: Checked) -> M | None:
    """``document`` as ``model``: every error goes to ``checked.problems`` at its line, all at once.

    The model returned has each wrong value replaced by its default (``None`` only when repairs do
    not converge), so the builders can go on and make their own checks without repeating these.
    """
    data = _plain(document if document is not None else {})
    reported = False
    for _ in range(8):
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        if not reported:  # the first pass finds every independent mistake; later ones see only repairs
            for error in errors:
                loc = tuple(error["loc"])
                checked.problems.add(*checked.at(loc), _message(model, error))
                checked.wrong.add(loc)
            reported = True
        data = _repair(data, model, errors)
    return None
