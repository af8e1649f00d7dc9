"""``about:``: what a mapping says about its sources and its sunset, as the loader reads it."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from helpers.oauth import ALEXA_MAPPING, load_mapping, read_mapping

ABOUT = """\
about:
  name: Acme
  category: home
  sources:
    - https://docs.acme.example/oauth#tokens
  checked: 2026-11-01
  unverified: the refresh token's lifetime
  sunset: {date: 2027-03-01, successor: acme-two, link: https://acme.example/blog/sunset}
"""


def test_about_is_read_with_dates_as_dates(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, ABOUT + ALEXA_MAPPING)
    about = mapping.about
    assert about is not None
    assert (about.name, about.category, about.sources) == ("Acme", "home", ("https://docs.acme.example/oauth#tokens",))
    assert about.checked == datetime.date(2026, 11, 1)
    assert about.unverified == "the refresh token's lifetime"
    assert about.sunset is not None
    assert (about.sunset.date, about.sunset.successor, about.sunset.link) == (
        datetime.date(2027, 3, 1), "acme-two", "https://acme.example/blog/sunset",
    )


def test_about_is_optional_in_the_model(tmp_path: Path) -> None:
    assert load_mapping(tmp_path, ALEXA_MAPPING).about is None


def test_a_quoted_date_is_a_date(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, ABOUT.replace("checked: 2026-11-01", 'checked: "2026-11-01"') + ALEXA_MAPPING)
    assert mapping.about is not None and mapping.about.checked == datetime.date(2026, 11, 1)


@pytest.mark.parametrize(
    ("change", "at", "message"),
    [
        (("category: home", "category: toys"), "category:", "about.category: must be one of identity, productivity, storage,"),
        (("checked: 2026-11-01", "checked: 1764547200"), "checked:", "about.checked: must be a date (YYYY-MM-DD), not a number"),
        (("checked: 2026-11-01", "checked: 2026-13-01"), "checked:", "about.checked: must be a date (YYYY-MM-DD), not text '2026-13-01'"),
        (("checked: 2026-11-01", "checked: 2026-11-01T10:00:00"), "checked:", "about.checked: must be a date (YYYY-MM-DD), not a time"),
        (("    - https://docs.acme.example/oauth#tokens\n", "    []\n"), "sources:", "about.sources: must have at least 1 item(s)"),
        (("https://docs.acme.example/oauth#tokens", "http://docs.acme.example/oauth"), "- http", "about.sources[0]: must be an https URL"),
        (("https://docs.acme.example/oauth#tokens", "docs.acme.example"), "- docs", "about.sources[0]: must be an https URL"),
        (("successor: acme-two", "successor: ../acme"), "sunset:", "about.sunset.successor: must be a mapping's name"),
        (("link: https://acme.example/blog/sunset", "link: ftp://acme.example"), "sunset:", "about.sunset.link: must be an https URL"),
        (("  name: Acme\n", ""), "category:", "about.name is required"),
        (("sunset: {date: 2027-03-01,", "sunset: {"), "sunset:", "about.sunset.date is required"),
        (("  name: Acme\n", "  name: Acme\n  vendor: x\n"), "vendor:", "about.vendor: unknown key"),
    ],
)
def test_a_wrong_about_is_one_problem_at_its_line(tmp_path: Path, change: tuple[str, str], at: str, message: str) -> None:
    text = ABOUT.replace(*change)
    assert text != ABOUT
    problems, _ = read_mapping(tmp_path, text + ALEXA_MAPPING)
    found = [str(problem) for problem in problems.items]
    line = next(number for number, row in enumerate(text.splitlines(), 1) if row.strip().startswith(at))
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'prov.yaml'}:{line}: {message}"), found
