"""``extends:``: a mapping merged over another of its folder (gateway/config/extends.py).

The merge rules (mappings key by key, lists and values replace, ``null`` restores the default,
the base's examples only when the file has none), the problems (unknown base, a name that is a
path, a cycle), each at its file and line, and the environment variables of a base that are needed
only where their value survives the merge.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.extends import load_mapping_document
from gateway.config.mapping import ProviderMapping, parse_mapping
from gateway.config.settings import load_config
from gateway.config.yamlfile import ConfigError, Problems, load_yaml

BASE = """\
about:
  name: Acme
  category: identity
  sources: [https://docs.acme.example/oauth]
  checked: 2026-11-01
platform:
  profile: alexa
  client_id: ${ACME_PLATFORM_ID:-alexa-skill}
  client_secret: alexa-skill-secret
upstream:
  client_id: gateway
  client_secret: ${ACME_SECRET}
  scope_separator: ","
  authorize:
    url: https://id.acme.example/authorize
    pkce: S256
    params:
      add: {audience: api}
  token:
    url: https://id.acme.example/token
    client_auth: body
  answer:
    fields: {access_token: accessToken}
examples:
  - name: base exchange
    body: {accessToken: at, expires_in: 60}
    expect: {access_token: at, token_type: Bearer, expires_in: 60}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}.yaml"
    file.write_text(text, encoding="utf-8")
    return file


def _read(file: Path, env: dict[str, str] | None = None, *, missing_env_ok: bool = False) -> tuple[list[str], ProviderMapping | None]:
    problems = Problems()
    document = load_mapping_document(file, problems, env=env if env is not None else {"ACME_SECRET": "s"}, missing_env_ok=missing_env_ok)
    mapping = parse_mapping(file.stem, document, file=str(file), problems=problems) if document is not None else None
    return [str(problem) for problem in sorted(set(problems.items))], mapping


def _line(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_variant_is_its_base_with_what_it_changes(tmp_path: Path) -> None:
    _write(tmp_path, "acme", BASE)
    variant = _write(
        tmp_path,
        "acme-mail",
        """\
extends: acme
about: {name: Acme Mail, category: productivity, sources: [https://docs.acme.example/mail]}
upstream:
  authorize:
    scope: mail.read
    params:
      add: {prompt: consent}
  token:
    timeout: 2.5
""",
    )
    problems, mapping = _read(variant)
    assert problems == []
    assert mapping is not None
    # The changed keys are the variant's; everything beside them is the base's, however deep.
    assert mapping.authorize.scope == "mail.read"
    assert mapping.authorize.url == "https://id.acme.example/authorize"
    assert mapping.authorize.pkce == "S256"
    assert mapping.token.timeout == 2.5
    assert mapping.token.client_auth == "body"
    assert mapping.token.url == "https://id.acme.example/token"
    assert mapping.scope_separator == ","
    assert mapping.upstream_client_secret == "s"
    assert mapping.platform.client_id == "alexa-skill"
    # A mapping of values merges key by key: the base's `audience` stays beside the variant's `prompt`.
    assert dict(mapping.authorize.params.add) == {"audience": "api", "prompt": "consent"}
    # `about` merges too: the variant's name and sources, the base's check date.
    assert mapping.about is not None
    assert (mapping.about.name, mapping.about.category) == ("Acme Mail", "productivity")
    assert mapping.about.sources == ("https://docs.acme.example/mail",)
    assert mapping.about.checked.isoformat() == "2026-11-01"
    assert mapping.extends == "acme"
    assert mapping.bases == (str(tmp_path / "acme.yaml"),)
    # The base's examples run for the variant, and say where they are written.
    assert [example.name for example in mapping.examples] == ["base exchange"]
    assert mapping.examples[0].file == str(tmp_path / "acme.yaml")
    assert mapping.examples[0].line == _line(BASE, "- name: base exchange")


def test_lists_replace_and_the_variants_examples_replace_the_bases(tmp_path: Path) -> None:
    _write(tmp_path, "acme", BASE)
    variant = _write(
        tmp_path,
        "acme-eu",
        """\
extends: acme
platform:
  redirect_uris: [https://skill.example/cb]
examples:
  - name: own exchange
    body: {accessToken: eu, expires_in: 30}
    expect: {access_token: eu, token_type: Bearer, expires_in: 30}
""",
    )
    problems, mapping = _read(variant)
    assert problems == []
    assert mapping is not None
    assert [example.name for example in mapping.examples] == ["own exchange"]
    assert mapping.examples[0].file == str(variant)
    # An empty list is a list too: no examples inherited.
    variant.write_text("extends: acme\nexamples: []\n", encoding="utf-8")
    problems, mapping = _read(variant)
    assert problems == [] and mapping is not None and mapping.examples == ()


def test_null_restores_the_default(tmp_path: Path) -> None:
    _write(tmp_path, "acme", BASE)
    variant = _write(tmp_path, "acme-plain", "extends: acme\nupstream:\n  scope_separator: null\n  authorize: {pkce: null}\n")
    problems, mapping = _read(variant)
    assert problems == []
    assert mapping is not None
    assert mapping.scope_separator == " "
    assert mapping.authorize.pkce == "none"
    assert mapping.authorize.url == "https://id.acme.example/authorize"


def test_a_base_may_extend_another(tmp_path: Path) -> None:
    _write(tmp_path, "acme", BASE)
    _write(tmp_path, "acme-mail", "extends: acme\nupstream:\n  authorize: {scope: mail.read}\n")
    top = _write(tmp_path, "acme-mail-eu", "extends: acme-mail\nupstream:\n  token: {url: https://eu.acme.example/token}\n")
    problems, mapping = _read(top)
    assert problems == []
    assert mapping is not None
    assert (mapping.authorize.scope, mapping.token.url) == ("mail.read", "https://eu.acme.example/token")
    assert mapping.authorize.url == "https://id.acme.example/authorize"
    assert mapping.extends == "acme-mail"
    assert mapping.bases == (str(tmp_path / "acme-mail.yaml"), str(tmp_path / "acme.yaml"))


def test_an_unknown_base_is_a_problem_at_the_extends_line(tmp_path: Path) -> None:
    text = "# a variant\nextends: nothere\nupstream: {client_id: x}\n"
    file = _write(tmp_path, "variant", text)
    problems, mapping = _read(file)
    assert mapping is None
    assert problems == [f"{file}:2: extends: no mapping 'nothere' in {tmp_path} (no file nothere.yaml)"]


@pytest.mark.parametrize("name", ["../acme", "sub/acme", "acme.yaml", "/etc/acme", "Acme"])
def test_a_base_outside_the_folder_can_not_be_named(tmp_path: Path, name: str) -> None:
    _write(tmp_path / "sub", "acme", BASE)
    _write(tmp_path.parent, "acme", BASE)
    file = _write(tmp_path, "variant", f"extends: {name!r}\n" + BASE)
    problems, _ = _read(file)
    assert problems == [
        f"{file}:1: extends: must name a mapping of the same folder by its file stem (like google), not {name!r}"
    ]


def test_a_cycle_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    first = _write(tmp_path, "first", "extends: second\n")
    _write(tmp_path, "second", "# the other half\nextends: first\n")
    problems, mapping = _read(first)
    assert mapping is None
    assert problems == [f"{tmp_path / 'second.yaml'}:2: extends: a cycle: first → second → first"]
    itself = _write(tmp_path, "itself", "extends: itself\n")
    assert _read(itself)[0] == [f"{itself}:1: extends: a cycle: itself → itself"]


def test_a_problem_in_an_inherited_value_names_the_base_file(tmp_path: Path) -> None:
    base_text = BASE.replace("pkce: S256", "pkce: sha256")
    base = _write(tmp_path, "acme", base_text)
    variant = _write(tmp_path, "acme-mail", "extends: acme\nupstream:\n  token:\n    encoding: xml\n")
    problems, _ = _read(variant)
    assert f"{base}:{_line(base_text, 'pkce: sha256')}: upstream.authorize.pkce: must be one of none, S256, plain, not 'sha256'" in problems
    assert f"{variant}:4: upstream.token.encoding: must be one of form, json, query, not 'xml'" in problems


def test_an_unreadable_base_is_said_at_the_extends_line(tmp_path: Path) -> None:
    base = _write(tmp_path, "acme", "upstream: [unclosed\n")
    variant = _write(tmp_path, "acme-mail", "extends: acme\n")
    problems, mapping = _read(variant)
    assert mapping is None
    assert f"{variant}:1: extends: the base {base} can not be read" in problems
    assert any(problem.startswith(f"{base}:") and "not valid YAML" in problem for problem in problems)


def test_a_base_variable_is_needed_only_where_its_value_survives(tmp_path: Path) -> None:
    _write(tmp_path, "acme", BASE)
    own = _write(tmp_path, "acme-own", "extends: acme\nupstream:\n  client_secret: ${OWN_SECRET}\n")
    problems, mapping = _read(own, env={"OWN_SECRET": "mine"})
    assert problems == []
    assert mapping is not None and mapping.upstream_client_secret == "mine"
    inherits = _write(tmp_path, "acme-inherits", "extends: acme\n")
    problems, mapping = _read(inherits, env={})
    assert problems == [f"{tmp_path / 'acme.yaml'}:{_line(BASE, 'ACME_SECRET')}: environment variable ACME_SECRET is not set"]
    # `gateway check` judges mappings without their secrets, as it does any other.
    problems, mapping = _read(inherits, env={}, missing_env_ok=True)
    assert problems == [] and mapping is not None


def test_parse_mapping_refuses_a_document_whose_base_was_not_merged(tmp_path: Path) -> None:
    _write(tmp_path, "acme", BASE)
    variant = _write(tmp_path, "acme-mail", "extends: acme\n")
    problems = Problems()
    assert parse_mapping("acme-mail", load_yaml(variant, problems, env={}), file=str(variant), problems=problems) is None
    assert [str(problem) for problem in problems.items] == [
        f"{variant}:1: extends: the base was not merged: read mapping files with gateway.config.extends.load_mapping_document"
    ]


def test_the_loader_serves_a_variant_and_its_base(tmp_path: Path) -> None:
    _write(tmp_path / "mappings", "acme", BASE)
    _write(tmp_path / "mappings", "acme-mail", "extends: acme\nupstream:\n  authorize: {scope: mail.read}\n")
    (tmp_path / "gateway.yaml").write_text("cookie: {secure: false}\n", encoding="utf-8")
    config = load_config(tmp_path / "gateway.yaml", env={"ACME_SECRET": "s"})
    assert sorted(config.providers) == ["acme", "acme-mail"]
    assert config.providers["acme-mail"].authorize.scope == "mail.read"
    assert config.providers["acme"].authorize.scope is None
    _write(tmp_path / "mappings", "broken", "extends: gone\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "gateway.yaml", env={"ACME_SECRET": "s"})
    assert [str(problem) for problem in info.value.problems] == [
        f"{tmp_path / 'mappings' / 'broken.yaml'}:1: extends: no mapping 'gone' in {tmp_path / 'mappings'} (no file gone.yaml)"
    ]
