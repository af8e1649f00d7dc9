"""The models are the one home of the vocabulary; the committed JSON Schemas and the loader follow them.

* ``mappings/schema.json`` and ``gateway.schema.json`` are what ``gateway schema`` makes of the models
  (a stale one fails here and in ``gateway schema --check``), and valid draft 2020-12;
* every shipped mapping and gateway.yaml validates against its schema, and says which it is;
* a mapping that uses every key of the model loads with no problem; each key misspelt is exactly
  one problem, at its line;
* problems the schema alone used to find (an unknown key in ``expect``) come as ``file:line``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel
from support.oauth import ALEXA_MAPPING

from gateway.cli.commands import main
from gateway.config import reference
from gateway.config.extends import load_mapping_document
from gateway.config.fields import inner as _inner
from gateway.config.mapping import ProviderMapping, parse_mapping
from gateway.config.models import ExpectFile, GatewayFile, MappingFile
from gateway.config.schemas import SCHEMA_FILES, json_schema
from gateway.config.settings import load_config
from gateway.config.yamlfile import ConfigError, Problems
from gateway.oauth.seal import generate_key

ROOT = Path(__file__).resolve().parents[3]
MAPPINGS = ROOT / "mappings"
#: Free-form values (example bodies) and maps keyed by the user's own names: no vocabulary inside.
OPEN = {"examples[].body", "examples[].first", "examples[].expect", "callback.keep"}

#: A mapping that uses every key of the vocabulary.
FULL: dict[str, Any] = {
    "extends": "base",
    "about": {
        "name": "Example ID",
        "category": "identity",
        "sources": ["https://id.example.com/docs/oauth"],
        "checked": "2026-12-01",
        "unverified": "the refresh token's lifetime",
        "sunset": {"date": "2027-06-01", "successor": "example-two", "link": "https://id.example.com/news/sunset"},
    },
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
            "typed": {"expires_in": 1800, "offline": True},
            "refresh": {
                "url": "https://id.example.com/refresh",
                "method": "GET",
                "encoding": "query",
                "typed": {"expires_in": 900},
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
                "typed": {"ttl": 1.5},
            },
            "exchange": {
                "url": "https://id.example.com/long-lived",
                "method": "GET",
                "encoding": "query",
                "client_auth": "body",
                "token": "data[0].access_token",
                "params": {"remove": ["x"], "rename": {"y": "z"}, "add": {"access_token": "{access_token}"}},
                "headers": {"remove": ["X-K"], "rename": {"X-L": "X-M"}, "add": {"X-N": "1"}},
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
            "expires_at_format": "iso8601",
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
            "first": {"data": [{"access_token": "short-lived"}]},
            "body": {"status": 0, "body": {"access_token": "at", "expires_in": 60}},
            "expect": {"access_token": "at", "token_type": "Bearer", "expires_in": 60},
        }
    ],
}



def _model_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key path of ``model`` (``upstream.token.refresh.grace``, ``examples[].status``)."""
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        paths.add(path)
        if path in OPEN:
            continue
        inner = _inner(info.annotation)
        if getattr(inner, "__origin__", None) is list:
            inner, path = _inner(inner.__args__[0]), f"{path}[]"  # type: ignore[attr-defined]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            paths |= _model_paths(inner, path)
    return paths


def _present(document: Any, path: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            child = f"{path}.{key}" if path else str(key)
            found.add(child)
            if child not in OPEN:
                found |= _present(value, child)
    elif isinstance(document, list):
        for item in document:
            found |= _present(item, f"{path}[]")
    return found


def _load(tmp_path: Path, document: dict[str, Any]) -> tuple[Problems, ProviderMapping | None]:
    """``document`` as ``full.yaml``, read as the loader reads it, beside the ``base.yaml`` it extends."""
    (tmp_path / "base.yaml").write_text(ALEXA_MAPPING, encoding="utf-8")
    file = tmp_path / "full.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    problems = Problems()
    data = load_mapping_document(file, problems, env={})
    return problems, parse_mapping("full", data, file=str(file), problems=problems)


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_the_committed_schema_is_what_the_model_makes(name: str) -> None:
    committed = json.loads((ROOT / name).read_text(encoding="utf-8"))
    assert committed == json_schema(SCHEMA_FILES[name], name), f"{name} is stale: run `gateway schema`"
    assert committed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(committed)


def test_gateway_schema_check_fails_on_a_stale_copy_and_writing_fixes_it(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    assert main(["schema", "--check", "--root", str(tmp_path)]) == 1  # none there yet
    assert main(["schema", "--root", str(tmp_path)]) == 0
    assert main(["schema", "--check", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "gateway.schema.json").read_text(encoding="utf-8") == (ROOT / "gateway.schema.json").read_text(encoding="utf-8")
    (tmp_path / "mappings" / "schema.json").write_text("{}", encoding="utf-8")
    assert main(["schema", "--check", "--root", str(tmp_path)]) == 1


def test_the_package_ships_no_json_copy_of_a_schema() -> None:
    assert not list((ROOT / "gateway").rglob("*.json"))


class _EditorLoader(yaml.SafeLoader):
    """YAML as an editor reads it against the schema (the YAML 1.2 core schema has no date type:
    ``checked: 2026-12-07`` is text there, which is what the schema's ``format: date`` describes)."""


def _timestamp_as_text(loader: _EditorLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_EditorLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((ROOT / name).read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "file", sorted(MAPPINGS.glob("*.yaml")) + [ROOT / "gateway" / "demo" / "demo.yaml"], ids=lambda p: p.name
)
def test_every_shipped_mapping_validates_against_the_schema(file: Path) -> None:
    assert file.read_text(encoding="utf-8").splitlines()[0].startswith("# yaml-language-server: $schema=")
    document = yaml.load(file.read_text(encoding="utf-8"), Loader=_EditorLoader)
    assert [error.message for error in _validator("mappings/schema.json").iter_errors(document)] == []


@pytest.mark.parametrize("file", [ROOT / "gateway.yaml", ROOT / "deploy" / "gateway.yaml"], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_shipped_gateway_yaml_validates_and_names_its_schema(file: Path) -> None:
    text = file.read_text(encoding="utf-8")
    schema = "gateway.schema.json" if file.parent == ROOT else "../gateway.schema.json"
    assert f"# yaml-language-server: $schema={schema}" in text.splitlines()[0]
    assert [error.message for error in _validator("gateway.schema.json").iter_errors(yaml.safe_load(text))] == []


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("encoding", "xml", False), ("bogus", 1, False), ("timeout", "2_5", False), ("timeout", True, False),
        ("timeout", 61, False), ("timeout", "${TOKEN_TIMEOUT}", True), ("timeout", None, True), ("url", None, True),
    ],
)
def test_the_schema_takes_what_the_loader_takes(key: str, value: object, valid: bool) -> None:
    document = copy.deepcopy(FULL)
    document["upstream"]["token"][key] = value
    assert _validator("mappings/schema.json").is_valid(document) is valid


def test_the_full_mapping_uses_every_key_and_loads_cleanly(tmp_path: Path) -> None:
    keys = _model_paths(MappingFile)
    assert keys - _present(FULL) == set(), "FULL must use every key of the model"
    problems, mapping = _load(tmp_path, FULL)
    assert not problems, [str(problem) for problem in problems.items]
    assert mapping is not None and mapping.discovery == FULL["upstream"]["discovery"]


def _copy_at(path: str) -> tuple[dict[str, Any], Any, str]:
    """A copy of FULL, the node that holds ``path``'s last key, and that key (``[]``: the first item)."""
    document = copy.deepcopy(FULL)
    parts = path.replace("[]", ".0").split(".")
    node: Any = document
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return document, node, parts[-1]


def _misspelt(path: str) -> dict[str, Any]:
    document, node, key = _copy_at(path)
    node[key + "x"] = node.pop(key)
    return document


@pytest.mark.parametrize("path", sorted(_model_paths(MappingFile)))
def test_a_misspelt_key_is_one_problem_at_its_line(tmp_path: Path, path: str) -> None:
    problems, _ = _load(tmp_path, _misspelt(path))
    wrong = path.replace("[]", "[0]") + "x"
    unknown = [problem for problem in problems.items if f"{wrong}: unknown key" in problem.message]
    assert len(unknown) == 1, [str(problem) for problem in problems.items]
    text = (tmp_path / "full.yaml").read_text(encoding="utf-8").splitlines()
    assert f"{wrong.rsplit('.', 1)[-1].split(']')[-1]}:" in text[unknown[0].line - 1]


def test_every_gateway_key_has_a_default_or_is_a_section() -> None:
    """gateway.yaml runs with no keys at all (the demo, a fresh checkout): nothing at its top is required."""
    assert all(not info.is_required() for info in GatewayFile.model_fields.values())


GATEWAY = f"keys: [\"{generate_key()}\"]\nmappings: mappings\npublic_url: https://link.example.com\n"
MAPPING = ALEXA_MAPPING + """\
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
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'mappings' / 'p.yaml'}:{line}: examples[0].expect.acces_token: unknown key (known here: ")


def test_two_mistakes_are_two_problems(tmp_path: Path) -> None:
    mapping = MAPPING.replace("acces_token: at}  # <-", "}").replace(
        "    url: https://id.example.com/token\n", "    url: https://id.example.com/token\n    encoding: xml\n    bogus: 1\n"
    )
    problems = _problems(tmp_path, mapping)
    assert len(problems) == 2, problems
    assert "upstream.token.encoding: must be one of" in problems[0]
    assert "upstream.token.bogus: unknown key" in problems[1]


def test_the_reference_tables_are_what_the_models_make() -> None:
    assert reference.stale(ROOT, write=False) == [], "run `gateway schema --docs`"
    assert main(["schema", "--check", "--docs", "--root", str(ROOT)]) == 0


def _table_keys(kind: str) -> set[str]:
    """Every key path the generated tables of ``kind`` list (``upstream.token.refresh.grace``)."""
    keys: set[str] = set()
    for name, table_kind, path in reference.tables(ROOT):
        if table_kind != kind:
            continue
        text = reference.rendered(ROOT, name)
        block = text.split(f"--docs ({kind}{' ' + path if path else ''}) -->", 1)[1].split("<!-- end generated -->", 1)[0]
        for row in block.splitlines()[3:]:
            key = row.split("`")[1]
            keys.add(f"{path}{'[]' if path == 'examples' else ''}.{key}" if path else key)
    return keys | {path for _, table_kind, path in reference.tables(ROOT) if table_kind == kind}


@pytest.mark.parametrize("kind", sorted(reference.KINDS))
def test_every_key_of_the_models_is_in_a_table_with_its_default(kind: str) -> None:
    model = reference.KINDS[kind]
    expected = {path.replace(".keep.", ".keep.<name>.") for path in _model_paths(model)}
    expected |= {"callback.keep.<name>.pattern", "callback.keep.<name>.allow_private"} if kind == "mapping" else set()
    one_row = (".params.", ".headers.", "examples[].expect.")  # a mapping of a few fixed keys: one row
    expected = {path for path in expected if not any(part in path for part in one_row)}
    assert expected - _table_keys(kind) == set()
    for name in reference.DOCUMENTS:
        text = (ROOT / name).read_text(encoding="utf-8")
        if kind == "gateway.yaml" and name == "docs/configuration.md":
            assert "| `listen.port` | whole number, 0–65535 | `8080` |" in text
            assert "| `upstream.timeout` | number, 0.1–60 | `4.0` |" in text
        if kind == "mapping" and name == "docs/mapping-guide.md":
            assert "| `refresh.grace` | whole number, 0–600 | `60` |" in text
            assert "| `expires_in_default` | whole number, 1–315360000 | `3600` |" in text


@pytest.mark.parametrize(
    ("document", "heading", "schema"),
    [("docs/configuration.md", "## Configuration", "gateway.schema.json"),
     ("docs/mapping-reference.md", "A complete example, GitHub for Alexa", "mappings/schema.json")],
    ids=["gateway.yaml", "mapping"],
)
def test_the_documented_examples_validate_against_their_schema(document: str, heading: str, schema: str) -> None:
    """What an editor would say of the documented examples: nothing (``${VAR}`` numbers, ``null``, ``store: memory``)."""
    page = (ROOT / document).read_text(encoding="utf-8")
    block = page[page.index(heading):].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert [error.message for error in _validator(schema).iter_errors(yaml.safe_load(block))] == []


@pytest.mark.parametrize(
    ("document", "valid"),
    [
        ({"listen": {"port": "${PORT}"}, "demo": "${DEMO:-false}"}, True),
        ({"listen": {"port": "8080"}}, False),
        ({"listen": {"port": 70000}}, False),
        ({"listen": None, "cookie": {"secure": None}, "store": "memory"}, True),
        ({"store": "redis"}, False),
        ({"providers": "github"}, False),
        ({"log": {"level": "loud"}}, False),
    ],
)
def test_the_gateway_schema_takes_what_the_loader_takes(document: dict[str, Any], valid: bool) -> None:
    assert _validator("gateway.schema.json").is_valid(document) is valid


def test_expect_keeps_a_null_it_is_given(tmp_path: Path) -> None:
    """``expect`` is compared as written; only the keys it names are compared (a null expects a null)."""
    document = copy.deepcopy(FULL)
    document["examples"][0]["expect"] = {"access_token": "at", "refresh_token": None}
    problems, mapping = _load(tmp_path, document)
    assert not problems.items and mapping is not None
    assert mapping.examples[0].expect == {"access_token": "at", "refresh_token": None}
    assert ExpectFile.keep_null == set(ExpectFile.model_fields)


def _wrong(path: str) -> dict[str, Any]:
    document, node, key = _copy_at(path)
    node[key] = [[1]]  # a list of a list: wrong for every key of the vocabulary
    return document


@pytest.mark.parametrize("path", sorted(path for path in _present(FULL) if path not in {"examples[].body", "examples[].first"}))
def test_a_wrong_value_anywhere_is_one_problem_at_its_line(tmp_path: Path, path: str) -> None:
    problems, _ = _load(tmp_path, _wrong(path))
    assert len(problems.items) == 1, [str(problem) for problem in problems.items]
    text = (tmp_path / "full.yaml").read_text(encoding="utf-8").splitlines()
    line = text[problems.items[0].line - 1]
    assert path.replace("[]", "").rsplit(".", 1)[-1] in line or line.strip() == "- - 1", line  # the key's line, or the item's


#: A gateway.yaml that uses every key.
FULL_GATEWAY: dict[str, Any] = {
    "listen": {"host": "127.0.0.1", "port": 9000},
    "public_url": "https://link.example.com",
    "keys": [generate_key()],
    "keys_file": "keys.txt",
    "link_keys": [generate_key()],
    "cookie": {"name": "flow", "secure": True, "max_age": 600, "max_flows": 4},
    "upstream": {"timeout": 4.0},
    "code_ttl": 300,
    "seal_format": "fernet",
    "log": {"format": "json", "level": "info", "request_id_header": "X-Request-Id"},
    "shutdown_grace": 10,
    "connections": {"max": 10, "header_timeout": 1, "body_timeout": 1, "keepalive_timeout": 1, "backlog": 8},
    "tls": {"cert": "cert.pem", "key": "key.pem"},
    "metrics": {"host": "127.0.0.1", "port": 9090},
    "store": {"url": "rediss://redis.example:6380/0", "timeout": 0.25, "ca_file": "ca.pem"},
    "demo": False,
    "trace": {"token": "t" * 32, "flows": 10, "max_bytes": 1048576},
    "mappings": "mappings",
    "providers": ["p"],
}


def _gateway(tmp_path: Path, document: dict[str, Any]) -> Path:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("pem", encoding="utf-8")
    (tmp_path / "keys.txt").write_text(generate_key() + "\n", encoding="utf-8")
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "mappings" / "p.yaml").write_text(MAPPING.split("examples:")[0], encoding="utf-8")
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return tmp_path / "gateway.yaml"


def test_the_full_gateway_yaml_uses_every_key_and_loads(tmp_path: Path) -> None:
    assert _model_paths(GatewayFile) - _present(FULL_GATEWAY) == set()
    config = load_config(_gateway(tmp_path, FULL_GATEWAY), env={})
    assert config.store.ca_file == str(tmp_path / "ca.pem") and config.connections.backlog == 8


@pytest.mark.parametrize("path", sorted(_present(FULL_GATEWAY)))
def test_a_wrong_gateway_value_anywhere_is_one_problem_at_its_line(tmp_path: Path, path: str) -> None:
    document = copy.deepcopy(FULL_GATEWAY)
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[part]
    node[last] = [[1]]
    config = _gateway(tmp_path, document)
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    problems = caught.value.problems
    assert len(problems) == 1, [str(problem) for problem in problems]
    line = config.read_text(encoding="utf-8").splitlines()[problems[0].line - 1]
    assert last in line or line.strip() == "- - 1", line


def test_the_model_choices_are_the_ones_the_request_path_knows() -> None:
    """Profiles and token errors are named in the model (for the schema) and where they act: the same."""
    from typing import get_args

    from gateway.config.models import TOKEN_ERRORS, Profile, TokenErrorCode
    from gateway.config.platforms import PROFILES

    assert get_args(Profile) == PROFILES
    assert set(get_args(TokenErrorCode)) == TOKEN_ERRORS


def test_a_variant_may_leave_out_what_its_base_gives_but_not_misspell_a_key() -> None:
    """A file with ``extends:`` is merged over its base before the models see it, so an editor must not
    ask it for ``upstream.client_id`` or the URLs; a typo is still a typo, and a file without
    ``extends:`` still needs them."""
    validator = _validator("mappings/schema.json")
    variant = {"extends": "google", "upstream": {"authorize": {"scope": "openid https://www.googleapis.com/auth/gmail.readonly"}}}
    assert [error.message for error in validator.iter_errors(variant)] == []
    misspelt = {"extends": "google", "upstream": {"authorise": {"scope": "openid"}}}
    assert ["Additional properties are not allowed ('authorise' was unexpected)"] == [e.message for e in validator.iter_errors(misspelt)]
    assert any("'client_id' is a required property" in e.message for e in validator.iter_errors({"upstream": variant["upstream"]}))
