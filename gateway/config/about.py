"""What a mapping says about itself (``about:``): where its facts come from, when they were checked, when it ends.

The keys are :class:`gateway.config.models.AboutFile`. This module builds their runtime form and
says what an operator must hear: ``gateway check`` names the mappings whose sources were last
re-read over a year ago (providers change their endpoints and rules without telling their
clients), and ``gateway check`` and ``gateway serve`` warn from 180 days before a provider turns a
mapping's API off, naming what replaces it. The days left are also a metric
(``gateway_provider_sunset_days``), which the alert rules of deploy/monitoring watch.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.config.fields import Checked
from gateway.config.models import MAPPING_NAME, AboutFile
from gateway.config.urls import split_url

__all__ = [
    "About", "Sunset", "build_about", "sunset_days", "sunset_warning", "stale_warning", "successor_warning", "inherited_warning",
    "check_warnings",
    "warn_of_sunsets", "today", "STALE_AFTER", "SUNSET_WARNING_DAYS",
]

log = logging.getLogger(__name__)

#: A mapping's sources are due a re-read this long after ``about.checked``.
STALE_AFTER = datetime.timedelta(days=365)
#: Warn this many days (or fewer) before a sunset.
SUNSET_WARNING_DAYS = 180


@dataclass(frozen=True)
class Sunset:
    """The provider (or this API) turns off on ``date``; ``successor`` is the mapping that replaces it."""

    date: datetime.date
    successor: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class About:
    """``about:`` of one mapping."""

    name: str
    category: str
    sources: tuple[str, ...]
    checked: datetime.date
    unverified: str | None = None
    sunset: Sunset | None = None
    #: Keys a variant should state itself (``name``, ``sources``) that it took from its ``extends:`` base.
    inherited: tuple[str, ...] = ()


def today() -> datetime.date:
    """The day in UTC (one answer for every replica, whatever the host's time zone)."""
    return datetime.datetime.now(datetime.UTC).date()


def _page_problem(value: str) -> str | None:
    """A documentation page: an absolute https URL (a ``#section`` is welcome)."""
    parts = split_url(value)
    if parts is None or parts.scheme != "https" or not parts.hostname:
        return f"must be an https URL of the provider's documentation, not {value!r}"
    return None


#: What a variant (``extends:``) says of itself, not of its base: else it reads as its base.
_OWN = ("name", "sources")


def build_about(checked: Checked, about: AboutFile | None) -> About | None:
    """The runtime form of ``about`` (``None`` when absent); the URLs and the successor's name are checked here."""
    if about is None:
        return None
    for index, source in enumerate(about.sources):
        problem = _page_problem(source)
        if problem:
            checked.error(("about", "sources", index), problem)
    sunset = None
    if about.sunset is not None:
        if about.sunset.link is not None and (problem := _page_problem(about.sunset.link)):
            checked.error(("about", "sunset", "link"), problem)
        successor = about.sunset.successor
        if successor is not None and not MAPPING_NAME.fullmatch(successor):
            checked.error(("about", "sunset", "successor"), f"must be a mapping's name (its file stem), not {successor!r}")
        sunset = Sunset(about.sunset.date, successor, about.sunset.link)
    own = getattr(checked.document, "file", "") or checked.file  # the file itself, not the bases merged under it
    inherited = tuple(key for key in _OWN if checked.at(("about", key))[0] != own)
    return About(about.name, about.category, tuple(about.sources), about.checked, about.unverified, sunset, inherited)


def sunset_days(sunset: Sunset, on: datetime.date) -> int:
    """Days from ``on`` to the sunset: negative once it is past."""
    return (sunset.date - on).days


def sunset_warning(about: About | None, on: datetime.date) -> str | None:
    """What to say when the sunset is within :data:`SUNSET_WARNING_DAYS` days of ``on`` or past, else ``None``."""
    if about is None or about.sunset is None:
        return None
    sunset = about.sunset
    days = sunset_days(sunset, on)
    if days > SUNSET_WARNING_DAYS:
        return None
    if days > 0:
        when = f"turns off on {sunset.date.isoformat()} ({days} day{'s' if days != 1 else ''} left)"
    elif days == 0:
        when = f"turns off today ({sunset.date.isoformat()})"
    else:
        when = f"turned off on {sunset.date.isoformat()} ({-days} day{'s' if days != -1 else ''} ago)"
    text = f"{about.name} {when}"
    text += f"; its successor is the mapping {sunset.successor!r}" if sunset.successor else "; no successor is named"
    return text + (f" ({sunset.link})" if sunset.link else "")


def stale_warning(about: About | None, on: datetime.date) -> str | None:
    """What to say when ``about`` is missing or its sources were checked over a year before ``on``, else ``None``."""
    if about is None:
        return "no about: block (name, category, sources, checked): where do its facts come from?"
    if on - about.checked > STALE_AFTER:
        return (
            f"about.checked is {about.checked.isoformat()}, over a year ago: "
            "re-read the sources against the mapping and update the date"
        )
    return None


def inherited_warning(about: About | None) -> str | None:
    """What to say when a variant took its base's ``about.name`` or ``about.sources``."""
    if about is None or not about.inherited:
        return None
    keys = " and ".join(f"about.{key}" for key in about.inherited)
    return f"{keys} {'is' if len(about.inherited) == 1 else 'are'} its base's: a variant states its own (it reads as {about.name!r})"


def successor_warning(file: str, about: About | None) -> str | None:
    """What to say when the sunset's successor is no mapping of the same folder."""
    successor = about.sunset.successor if about is not None and about.sunset is not None else None
    if successor is None or (Path(file).parent / f"{successor}.yaml").is_file():
        return None
    return f"about.sunset.successor {successor!r} is no mapping of {Path(file).parent}"


def check_warnings(mappings: Iterable[tuple[str, About | None]], on: datetime.date) -> list[str]:
    """What ``gateway check`` says of the mappings (file, about), each ``file: warning: …``: a missing
    ``about``, sources checked over a year ago, a variant's name or sources taken from its base, a
    sunset within 180 days or past and a successor that is not in the folder."""
    warnings = []
    for file, about in mappings:
        said = (stale_warning(about, on), inherited_warning(about), sunset_warning(about, on), successor_warning(file, about))
        for warning in said:
            if warning is not None:
                warnings.append(f"{file}: warning: {warning}")
    return warnings


class Described(Protocol):
    """A mapping as :class:`gateway.config.mapping.ProviderMapping` has it: its file and its ``about``."""

    @property
    def file(self) -> str: ...

    @property
    def about(self) -> About | None: ...


def warn_of_sunsets(mappings: Iterable[Described], on: datetime.date | None = None) -> int:
    """Log a warning for each served mapping whose sunset is near or past (``gateway serve``, each reload); how many."""
    count = 0
    for mapping in mappings:
        warning = sunset_warning(mapping.about, on or today())
        if warning is not None:
            log.warning("%s: %s", mapping.file, warning)
            count += 1
    return count
