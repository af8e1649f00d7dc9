"""Every mapping the project ships loads, passes its own ``examples:`` offline and says where its facts come from."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from gateway.config.about import sunset_warning, today
from gateway.config.extends import load_mapping_document
from gateway.config.mapping import parse_mapping
from gateway.config.yamlfile import Problems
from gateway.demo import demo_mapping_file
from gateway.upstream.examples import run_examples

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "mappings").glob("*.yaml")) + [Path(demo_mapping_file())]


@pytest.mark.parametrize("file", SHIPPED, ids=[file.stem for file in SHIPPED])
def test_shipped_mapping_loads_and_passes_its_examples(file: Path) -> None:
    problems = Problems()
    data = load_mapping_document(file, problems, env={"GATEWAY_PUBLIC_URL": "https://link.example.com"}, missing_env_ok=True)
    mapping = parse_mapping(file.stem, data, file=str(file), problems=problems)
    assert not problems, "\n".join(map(str, problems.items))
    assert mapping is not None
    assert mapping.examples, "every shipped mapping documents its provider with examples"
    assert run_examples(mapping) == []


MAPPINGS = sorted((ROOT / "mappings").glob("*.yaml"))


@pytest.mark.parametrize("file", MAPPINGS, ids=[file.stem for file in MAPPINGS])
def test_shipped_mapping_names_its_sources_and_when_they_were_checked(file: Path) -> None:
    """Each provider's facts have one home the loader reads: ``about`` names the provider's own pages
    (https) and the day they were last re-read, and a sunset names a successor that ships too."""
    problems = Problems()
    data = load_mapping_document(file, problems, env={"GATEWAY_PUBLIC_URL": "https://link.example.com"}, missing_env_ok=True)
    mapping = parse_mapping(file.stem, data, file=str(file), problems=problems)
    assert not problems, "\n".join(map(str, problems.items))
    assert mapping is not None
    assert re.search(r"^about:$", file.read_text(encoding="utf-8"), re.M), "the file states its own about (not only a base's)"
    about = mapping.about
    assert about is not None, "every shipped mapping has an about block"
    assert about.name and about.category
    assert about.sources and all(url.startswith("https://") for url in about.sources), about.sources
    assert about.checked <= today(), about.checked
    if about.sunset is not None and about.sunset.successor is not None:
        assert (file.parent / f"{about.sunset.successor}.yaml").is_file(), about.sunset


def test_fitbit_warns_that_it_is_off_and_names_google_health() -> None:
    """Google turned the Fitbit Web API and its OAuth endpoints off (developers.google.com/health/migration):
    the shipped fitbit mapping says so, and the warning points at the shipped successor."""
    problems = Problems()
    file = ROOT / "mappings" / "fitbit.yaml"
    data = load_mapping_document(file, problems, env={}, missing_env_ok=True)
    mapping = parse_mapping("fitbit", data, file=str(file), problems=problems)
    assert mapping is not None and mapping.about is not None and mapping.about.sunset is not None
    assert mapping.about.sunset.successor == "google-health"
    assert (ROOT / "mappings" / "google-health.yaml").is_file()
    warning = sunset_warning(mapping.about, datetime.date(2026, 12, 7))
    assert warning is not None and "turned off on 2026-11-02" in warning and "'google-health'" in warning, warning
    assert sunset_warning(mapping.about, datetime.date(2026, 1, 1)) is None  # over 180 days ahead


#: Clouds of things people ask a voice assistant about: what smart-home and health skills link to.
DEVICE_CATEGORIES = {"device", "energy", "vehicle", "health", "home"}


def test_the_catalogue_reaches_a_hundred_mappings_eighty_servers_and_twenty_device_clouds() -> None:
    """What an integrator finds in ``mappings/``: at least 100 mappings, for at least 80 distinct
    authorization servers (a variant written with ``extends:`` is a mapping, not a server; a server
    is told apart by its token endpoint's host, templated hosts included, and the generic OpenID
    Connect mapping is no provider's), at least 20 of them device, energy, vehicle, health or
    home-platform clouds."""
    servers: set[str] = set()
    devices: set[str] = set()
    for file in MAPPINGS:
        problems = Problems()
        data = load_mapping_document(file, problems, env={"GATEWAY_PUBLIC_URL": "https://link.example.com"}, missing_env_ok=True)
        mapping = parse_mapping(file.stem, data, file=str(file), problems=problems)
        assert mapping is not None and mapping.about is not None, file.name
        if file.stem == "oidc" or mapping.extends is not None:
            continue
        host = re.sub(r"^https?://", "", mapping.token.url).split("/", 1)[0].lower()
        servers.add(host)
        if mapping.about.category in DEVICE_CATEGORIES:
            devices.add(host)
    assert len(MAPPINGS) >= 100
    assert len(servers) >= 80, sorted(servers)
    assert len(devices) >= 20, sorted(devices)
