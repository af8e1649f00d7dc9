"""mappings/schema.json and the loader (gateway/config/mapping.py) describe the same vocabulary.

* every key the loader reads is a schema property and every schema property is a key the loader
  reads (the loader's keys are recorded while it reads a mapping: each ``Section`` knows which keys
  it asked for);
* a mapping that uses every key loads with no problem and validates against the schema;
* each key misspelt is refused by both;
* every shipped mapping validates; schema problems come as ``file:line`` and never twice.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.config.mapping import parse_mapping
from gateway.config.reader import Section
from gateway.config.schema import load_schema, schema_problems
from gateway.config.settings import load_config
from gateway.config.yamlfile import ConfigError, Problems, load_yaml
from gateway.oauth.seal import generate_key

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
#: Values the loader takes as they are (free-form documents), so their insides are no vocabulary.
RAW = {"examples[].body", "examples[].expect"}

#: A mapping that uses every key of the vocabulary.
FULL: dict[str, Any] = {
    "platform": {
        "profile": "alexa",
        "vendor_ids": ["M3BVP74N95SP1F"],
        "project_ids": ["my-project"],
        "redirect_uris": ["https://app.example.com/link/*"],
        "client_id": "alexa-skill",
        "client_secret": "alexa-skill-secret",
        "pkce": "optional",
    },
    "grant": "code",
    "upstream": {
        "discovery": "https://id.example.com/.well-known/openid-configuration",
        "issuer": "https://id.example.com",
        "require_iss": True,
        "client_id": "gateway",
        "client_secret": "gateway-secret",
        "scope_separator": ",",
        "authorize": {
            "url": "https://id.example.com/authorize",
            "scope": "read",
            "pkce": "S256",
            "params": {"remove": ["prompt"], "rename": {"client_id": "app_id"}, "add": {"hl": "{locale}"}},
        },
        "token": {
            "url": "https://id.example.com/token",
            "method": "POST",
            "encoding": "form",
            "client_auth": "body",
            "timeout": 3.5,
            "params": {"remove": ["scope"], "rename": {"code": "auth_code"}, "add": {"action": "requesttoken"}},
            "headers": {"remove": ["Accept"], "rename": {"X-A": "X-B"}, "add": {"Accept": "application/json"}},
            "refresh": {
                "client_auth": "basic",
                "params": {"remove": ["redirect_uri"], "rename": {"refresh_token": "token"}, "add": {"client_id": "{client_id}"}},
                "headers": {"remove": ["X-C"], "rename": {"X-D": "X-E"}, "add": {"X-F": "1"}},
                "keep_refresh_token": True,
                "grace": 30,
            },
            "client_credentials": {
                "client_auth": "body",
                "params": {"remove": ["scope"], "rename": {"a": "b"}, "add": {"audience": "api"}},
                "headers": {"remove": ["X-G"], "rename": {"X-H": "X-I"}, "add": {"X-J": "1"}},
            },
        },
        "revoke": {"url": "https://id.example.com/revoke", "client_auth": "body"},
        "answer": {
            "format": "json",
            "root": "body",
            "fields": {
                "access_token": "access_token",
                "refresh_token": "refresh_token",
                "expires_in": "expires_in",
                "expires": "expires",
                "expires_at": "expires_at",
                "scope": "scope",
                "id_token": "id_token",
            },
            "expires_in_default": 7200,
            "error": {
                "when": "status != `0`",
                "code": "to_string(status)",
                "description": "error",
                "map": {"503": "invalid_grant"},
            },
        },
    },
    "callback": {"keep": {"region": {"pattern": "[a-z]{2}[0-9]", "allow_private": False}}},
    "tenant": {"name": "shop", "pattern": "[a-z0-9][a-z0-9-]{0,61}", "label": "Your shop name", "allow_private": False},
    "examples": [
        {
            "name": "success",
            "grant": "authorization_code",
            "status": 200,
            "content_type": "application/json",
            "now": 1700000000,
            "body": {"status": 0, "body": {"access_token": "at", "expires_in": 60}},
            "expect": {"access_token": "at", "token_type": "Bearer", "expires_in": 60},
        }
    ],
}


def _load(tmp_path: Path, document: dict[str, Any]) -> tuple[Any, Problems, Any]:
    file = tmp_path / "full.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    problems = Problems()
    data = load_yaml(file, problems, env={})
    mapping = parse_mapping("full", Section(data, file=str(file), problems=problems))
    return data, problems, mapping


def _loader_vocabulary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> set[str]:
    """Every key path the loader asks for while it reads FULL (asked for = known, given or not)."""
    read: set[str] = set()
    finish = Section.finish

    def recording_finish(self: Section) -> None:
        where = re.sub(r"\[\d+\]", "[]", self.where)
        read.update(f"{where}.{key}" if where else key for key in self._read)
        finish(self)

    monkeypatch.setattr(Section, "finish", recording_finish)
    _load(tmp_path, FULL)
    return read


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _schema_vocabulary() -> tuple[set[str], set[str]]:
    """(every property path of the schema, the paths that are free-form maps)."""
    schema = load_schema()
    paths: set[str] = set()
    maps: set[str] = set()

    def walk(node: dict[str, Any], path: str) -> None:
        node = _resolve(schema, node)
        if path in RAW:
            return
        for name, child in node.get("properties", {}).items():
            child_path = f"{path}.{name}" if path else name
            paths.add(child_path)
            walk(child, child_path)
        if "items" in node:
            walk(node["items"], f"{path}[]")
        if not node.get("properties") and isinstance(node.get("additionalProperties"), dict):
            maps.add(path)

    walk(schema, "")
    return paths, maps


def _present(document: Any, path: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            child = f"{path}.{key}" if path else str(key)
            found.add(child)
            if child not in RAW:
                found |= _present(value, child)
    elif isinstance(document, list):
        for item in document:
            found |= _present(item, f"{path}[]")
    return found


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_package_ships_the_schema_of_the_mappings_folder() -> None:
    """gateway/config/schema.json is a copy (not a link: the container image has no mappings/ folder);
    editors use mappings/schema.json, the loader the packaged one: they must stay the same."""
    assert load_schema() == json.loads((MAPPINGS / "schema.json").read_text(encoding="utf-8"))


def test_every_key_the_loader_reads_is_in_the_schema_and_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    schema_paths, maps = _schema_vocabulary()
    loader_paths = {
        path for path in _loader_vocabulary(monkeypatch, tmp_path)
        if not any(path.startswith(prefix + ".") for prefix in maps | RAW)
    }
    schema_keys = {path for path in schema_paths if not any(path.startswith(prefix + ".") for prefix in maps | RAW)}
    assert loader_paths - schema_keys == set(), "keys the loader reads but the schema lacks"
    assert schema_keys - loader_paths == set(), "keys the schema names but the loader ignores"


def test_every_mapping_object_forbids_unknown_keys() -> None:
    schema = load_schema()

    def walk(node: dict[str, Any], path: str) -> None:
        node = _resolve(schema, node)
        if path in RAW:
            return
        if node.get("properties"):
            assert node.get("additionalProperties") is False, path
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema, "")


def test_the_full_mapping_uses_every_key_loads_cleanly_and_validates(tmp_path: Path) -> None:
    schema_paths, maps = _schema_vocabulary()
    present = {path for path in _present(FULL) if not any(path.startswith(prefix + ".") for prefix in maps)}
    assert schema_paths - present == set(), "FULL must use every key of the schema"
    data, problems, mapping = _load(tmp_path, FULL)
    assert not problems, [str(problem) for problem in problems.items]
    assert schema_problems(data) == []
    assert mapping is not None and mapping.discovery == FULL["upstream"]["discovery"]


def _misspelt(path: str) -> dict[str, Any]:
    document = copy.deepcopy(FULL)
    parts = path.replace("[]", ".0").split(".")
    node: Any = document
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[parts[-1] + "x"] = node.pop(parts[-1])
    return document


def _keys() -> list[str]:
    paths, maps = _schema_vocabulary()
    return sorted(path for path in paths if not any(path.startswith(prefix + ".") for prefix in maps))


@pytest.mark.parametrize("path", _keys())
def test_a_misspelt_key_is_refused_by_the_loader_and_by_the_schema(tmp_path: Path, path: str) -> None:
    data, problems, _ = _load(tmp_path, _misspelt(path))
    wrong = path.replace("[]", "[0]") + "x"
    assert any(f"{wrong}: unknown key" in problem.message for problem in problems.items), (
        wrong, [str(problem) for problem in problems.items])
    assert any(f"{wrong}: unknown key" in message for _, message in schema_problems(data)), schema_problems(data)


@pytest.mark.parametrize("file", sorted(MAPPINGS.glob("*.yaml")) + [ROOT / "gateway" / "demo" / "demo.yaml"], ids=lambda p: p.name)
def test_every_shipped_mapping_validates_against_the_schema(file: Path) -> None:
    problems = Problems()
    data = load_yaml(file, problems, env={}, missing_env_ok=True)
    assert not problems
    assert schema_problems(data) == []
    assert file.read_text(encoding="utf-8").splitlines()[0].startswith("# yaml-language-server: $schema=")


GATEWAY = f"keys: [\"{generate_key()}\"]\nmappings: mappings\npublic_url: https://link.example.com\n"
MAPPING = """\
platform:
  profile: alexa
  client_id: alexa-skill
  client_secret: alexa-skill-secret
upstream:
  client_id: gateway
  authorize:
    url: https://id.example.com/authorize
  token:
    url: https://id.example.com/token
examples:
  - name: ok
    body: {"access_token": "at"}
    expect: {access_token: at, token_type: Bearer, expires_in: 3600, acces_token: at}  # <-
"""


def _problems(tmp_path: Path, mapping: str) -> list[str]:
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "mappings" / "p.yaml").write_text(mapping, encoding="utf-8")
    (tmp_path / "gateway.yaml").write_text(GATEWAY, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "gateway.yaml", env={})
    return [str(problem) for problem in info.value.problems]


def test_a_schema_only_problem_is_reported_at_its_file_and_line(tmp_path: Path) -> None:
    problems = _problems(tmp_path, MAPPING)
    line = next(number for number, text in enumerate(MAPPING.splitlines(), 1) if "# <-" in text)
    assert problems == [f"{tmp_path / 'mappings' / 'p.yaml'}:{line}: examples[0].expect.acces_token: unknown key"]


def test_a_mistake_both_find_is_reported_once(tmp_path: Path) -> None:
    mapping = MAPPING.replace("acces_token: at}  # <-", "}").replace(
        "    url: https://id.example.com/token\n", "    url: https://id.example.com/token\n    encoding: xml\n    bogus: 1\n"
    )
    problems = _problems(tmp_path, mapping)
    assert len(problems) == 2, problems
    assert "upstream.token.encoding: must be one of" in problems[0]
    assert "upstream.token.bogus: unknown key" in problems[1]
