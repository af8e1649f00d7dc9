"""The smartthings and alexa-mcp profiles: their redirect URIs, PKCE default, and that the
config model and the JSON Schema made from it accept the same profile and pkce values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.config.mapping import ProviderMapping, parse_mapping
from gateway.config.models import MappingFile
from gateway.config.platforms import SMARTTHINGS_REDIRECT_URIS, build_policy, sample_redirect_uri
from gateway.config.schemas import json_schema
from gateway.config.yamlfile import Problems, load_yaml

SMARTTHINGS = build_policy("smartthings")


@pytest.mark.parametrize("uri", SMARTTHINGS_REDIRECT_URIS)
def test_each_regional_callback_is_allowed(uri: str) -> None:
    assert SMARTTHINGS.allows(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "https://c2c-us.smartthings.com/oauth/callback/",
        "https://c2c-usa.smartthings.com/oauth/callback",
        "https://C2C-US.smartthings.com/oauth/callback",
        "https://c2c-us.smartthings.com/oauth/callbackx",
        "https://c2c-us.smartthings.com/oauth/callback#x",
        "https://c2c-us.smartthings.com/oauth/callback%3Fx",
        "https://c2c-us.smartthings.com\\@evil.example/oauth/callback",
        "https://c2c-us.smartthings.com.evil.example/oauth/callback",
        "https://api.smartthings.com/oauth/callback",
        "https://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA",
    ],
)
def test_near_misses_are_refused(uri: str) -> None:
    assert not SMARTTHINGS.allows(uri)


def test_alexa_mcp_takes_alexas_redirect_uris() -> None:
    policy = build_policy("alexa-mcp", vendor_ids=["M2AAAAAAAAAAAA"])
    assert policy.allows("https://layla.amazon.com/api/skill/link/M2AAAAAAAAAAAA")
    assert not policy.allows("https://layla.amazon.com/api/skill/link/M2BBBBBBBBBBBB")
    assert sample_redirect_uri("smartthings", [], [], []) == SMARTTHINGS_REDIRECT_URIS[0]


def _mapping(platform: dict[str, Any]) -> dict[str, Any]:
    return {
        "platform": {"client_id": "p", "client_secret": "platform-secret", **platform},
        "upstream": {
            "client_id": "u",
            "authorize": {"url": "https://id.example.com/authorize"},
            "token": {"url": "https://id.example.com/token"},
        },
    }


def _read(tmp_path: Path, document: dict[str, Any]) -> tuple[Problems, ProviderMapping | None]:
    """Read ``document`` as the loader reads a mapping file."""
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(document), encoding="utf-8")
    problems = Problems()
    data = load_yaml(file, problems, env={})
    return problems, parse_mapping("p", data, file=str(file), problems=problems)


@pytest.mark.parametrize(
    ("platform", "pkce"),
    [
        ({"profile": "smartthings"}, "optional"),
        ({"profile": "alexa-mcp"}, "S256"),
        ({"profile": "alexa-mcp", "pkce": "S256"}, "S256"),
        ({"profile": "alexa", "pkce": "S256"}, "S256"),
    ],
)
def test_reader_and_schema_accept_the_new_values(tmp_path: Path, platform: dict[str, Any], pkce: str) -> None:
    document = _mapping(platform)
    jsonschema.validate(document, json_schema(MappingFile, "mappings/schema.json"))
    problems, mapping = _read(tmp_path, document)
    assert not problems.items, problems.items
    assert mapping is not None and mapping.platform.pkce == pkce


@pytest.mark.parametrize("platform", [{"profile": "smartthing"}, {"profile": "alexa", "pkce": "s256"}])
def test_reader_and_schema_refuse_near_misses(tmp_path: Path, platform: dict[str, Any]) -> None:
    document = _mapping(platform)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json_schema(MappingFile, "mappings/schema.json"))
    problems, _ = _read(tmp_path, document)
    assert problems.items


@pytest.mark.parametrize("weaker", ["optional", "required"])
def test_a_profile_that_demands_s256_is_not_weakened_by_the_mapping(tmp_path: Path, weaker: str) -> None:
    """``alexa-mcp`` with ``pkce: optional`` (the value the alexa examples show) fails the load
    at the ``pkce:`` line, rather than serving plain or no PKCE and advertising ``plain``."""
    problems, _ = _read(tmp_path, _mapping({"profile": "alexa-mcp", "pkce": weaker}))
    found = [problem for problem in problems.items if "requires PKCE with S256" in problem.message]
    assert found, problems.items
    text = (tmp_path / "p.yaml").read_text().splitlines()
    assert found[0].line > 0 and text[found[0].line - 1].strip().startswith("pkce:"), str(found[0])
