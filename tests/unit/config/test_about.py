"""``about:``: what a mapping says about its sources and its sunset, as the loader reads it."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest
from support.oauth import ALEXA_MAPPING, load_mapping, read_mapping

from gateway.cli.commands import main
from gateway.config.about import About, Sunset, stale_warning, sunset_days, sunset_warning, today, warn_of_sunsets

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


# -- what `gateway check` and `gateway serve` say ---------------------------------------------------
TODAY = datetime.date(2026, 12, 7)


def _about(checked: str = "2026-11-01", sunset: str | None = None, successor: str | None = None) -> About:
    return About(
        "Acme", "home", ("https://docs.acme.example/oauth",), datetime.date.fromisoformat(checked), None,
        Sunset(datetime.date.fromisoformat(sunset), successor, "https://acme.example/news") if sunset else None,
    )


@pytest.mark.parametrize(
    ("sunset", "expected"),
    [
        ("2027-06-06", None),  # 181 days left: not yet
        ("2027-06-05", "Acme turns off on 2027-06-05 (180 days left); its successor is the mapping 'acme-two' (https://acme.example/news)"),
        ("2026-12-08", "Acme turns off on 2026-12-08 (1 day left); its successor is the mapping 'acme-two' (https://acme.example/news)"),
        ("2026-12-07", "Acme turns off today (2026-12-07); its successor is the mapping 'acme-two' (https://acme.example/news)"),
        ("2026-09-30", "Acme turned off on 2026-09-30 (68 days ago); its successor is the mapping 'acme-two' (https://acme.example/news)"),
    ],
)
def test_a_sunset_is_said_from_180_days_before(sunset: str, expected: str | None) -> None:
    about = _about(sunset=sunset, successor="acme-two")
    assert sunset_warning(about, TODAY) == expected
    assert about.sunset is not None and sunset_days(about.sunset, TODAY) == (datetime.date.fromisoformat(sunset) - TODAY).days


def test_a_sunset_without_successor_says_so() -> None:
    assert sunset_warning(_about(sunset="2027-01-01"), TODAY) == (
        "Acme turns off on 2027-01-01 (25 days left); no successor is named (https://acme.example/news)"
    )
    assert sunset_warning(_about(), TODAY) is None
    assert sunset_warning(None, TODAY) is None


def test_sources_checked_over_a_year_ago_are_said() -> None:
    assert stale_warning(_about(checked="2025-12-07"), TODAY) is None  # 365 days: due, not yet over
    assert stale_warning(_about(checked="2025-12-06"), TODAY) == (
        "about.checked is 2025-12-06, over a year ago: re-read the sources against the mapping and update the date"
    )
    assert stale_warning(None, TODAY) == "no about: block (name, category, sources, checked): where do its facts come from?"


def _gateway(tmp_path: Path, mappings: dict[str, str]) -> Path:
    (tmp_path / "mappings").mkdir()
    for name, text in mappings.items():
        (tmp_path / "mappings" / f"{name}.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "gateway.yaml").write_text("cookie: {secure: false}\n", encoding="utf-8")
    return tmp_path / "gateway.yaml"


def _block(name: str, checked: datetime.date, sunset: datetime.date | None = None, successor: str | None = None) -> str:
    text = f"about:\n  name: {name}\n  category: health\n  sources: [https://docs.example.com/{name}]\n  checked: {checked}\n"
    if sunset is not None:
        text += f"  sunset: {{date: {sunset}" + (f", successor: {successor}" if successor else "") + "}\n"
    return text


def test_gateway_check_names_old_sources_missing_about_and_near_sunsets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = today()
    config = _gateway(
        tmp_path,
        {
            "current": _block("Current", now) + ALEXA_MAPPING,
            "old": _block("Old", now - datetime.timedelta(days=400)) + ALEXA_MAPPING,
            "bare": ALEXA_MAPPING,
            "ending": _block("Ending", now, now + datetime.timedelta(days=30), "current") + ALEXA_MAPPING,
            "gone": _block("Gone", now, now - datetime.timedelta(days=2), "nowhere") + ALEXA_MAPPING,
            "later": _block("Later", now, now + datetime.timedelta(days=400)) + ALEXA_MAPPING,
        },
    )
    assert main(["check", "--config", str(config)]) == 0  # warnings, not errors
    out, err = capsys.readouterr()
    folder = tmp_path / "mappings"
    assert sorted(err.splitlines()) == sorted([
        f"{folder / 'bare.yaml'}: warning: no about: block (name, category, sources, checked): where do its facts come from?",
        f"{folder / 'old.yaml'}: warning: about.checked is {now - datetime.timedelta(days=400)}, over a year ago: "
        "re-read the sources against the mapping and update the date",
        f"{folder / 'ending.yaml'}: warning: Ending turns off on {now + datetime.timedelta(days=30)} (30 days left); "
        "its successor is the mapping 'current'",
        f"{folder / 'gone.yaml'}: warning: Gone turned off on {now - datetime.timedelta(days=2)} (2 days ago); "
        "its successor is the mapping 'nowhere'",
        f"{folder / 'gone.yaml'}: warning: about.sunset.successor 'nowhere' is no mapping of {folder}",
    ])
    assert out.startswith("ok: 6 provider(s)")


def test_gateway_serve_logs_a_near_sunset(caplog: pytest.LogCaptureFixture) -> None:
    class Served:
        def __init__(self, file: str, about: About | None) -> None:
            self.file, self.about = file, about

    served = [Served("a.yaml", _about(sunset="2026-09-30", successor="b")), Served("b.yaml", _about()), Served("c.yaml", None)]
    with caplog.at_level(logging.WARNING, logger="gateway.config.about"):
        assert warn_of_sunsets(served, TODAY) == 1
    assert [record.getMessage() for record in caplog.records] == [
        "a.yaml: Acme turned off on 2026-09-30 (68 days ago); its successor is the mapping 'b' (https://acme.example/news)"
    ]


def test_a_variant_that_keeps_its_bases_name_is_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _block("Base", today()) + ALEXA_MAPPING
    config = _gateway(
        tmp_path,
        {
            "base": base,
            "named": "extends: base\nabout: {name: Named, sources: [https://docs.example.com/named]}\n",
            "unnamed": "extends: base\nabout: {checked: " + str(today()) + "}\n",
            "silent": "extends: base\n",
        },
    )
    assert main(["check", "--config", str(config)]) == 0
    folder = tmp_path / "mappings"
    assert sorted(capsys.readouterr().err.splitlines()) == [
        f"{folder / 'silent.yaml'}: warning: about.name and about.sources are its base's: a variant states its own (it reads as 'Base')",
        f"{folder / 'unnamed.yaml'}: warning: about.name and about.sources are its base's: a variant states its own (it reads as 'Base')",
    ]
