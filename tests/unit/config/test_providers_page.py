"""docs/providers.md is what the shipped mappings make, and says what each mapping does (gateway/config/providers_page.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.oauth import ALEXA_MAPPING

from gateway.cli.commands import main
from gateway.config import providers_page

ROOT = Path(__file__).resolve().parents[3]

BASE = """\
about:
  name: Acme ID
  category: identity
  sources: [https://docs.acme.example/oauth, https://docs.acme.example/more]
  checked: 2026-11-02
  sunset: {date: 2027-03-01, successor: acme-two, link: https://acme.example/news}
platform:
  profile: google
  client_id: g
  client_secret: google-secret
tenant: {name: site, pattern: '[a-z]+', label: Your site}
upstream:
  client_id: gateway
  scope_separator: ","
  authorize: {url: 'https://{site}.acme.example/authorize', pkce: S256}
  token:
    url: 'https://{site}.acme.example/token'
    client_auth: body
    encoding: json
  answer: {format: form, expires_in_default: null}
"""


def _root(tmp_path: Path, mappings: dict[str, str]) -> Path:
    (tmp_path / "mappings").mkdir()
    for name, text in mappings.items():
        (tmp_path / "mappings" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_committed_page_is_what_the_shipped_mappings_make() -> None:
    assert providers_page.stale(ROOT, write=False) == [], f"{providers_page.PAGE} is stale: run `gateway schema --docs`"


def test_every_shipped_mapping_is_on_the_page() -> None:
    text = (ROOT / providers_page.PAGE).read_text(encoding="utf-8")
    for file in sorted((ROOT / "mappings").glob("*.yaml")):
        assert f"| `{file.stem}` |" in text, file.stem


def test_a_row_says_who_where_what_when_and_until_when(tmp_path: Path) -> None:
    root = _root(
        tmp_path,
        {
            "acme": BASE,
            "acme-mail": "extends: acme\nabout: {name: Acme Mail, category: productivity, sources: [https://docs.acme.example/mail]}\n",
            "bare": ALEXA_MAPPING,
        },
    )
    text = providers_page.render(providers_page.shipped(root / "mappings"))
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["## Identity", "## Productivity", "## Unknown"]  # the vocabulary's order, unknown last
    row = next(line for line in text.splitlines() if "`acme` |" in line)
    assert row == (
        "| [Acme ID](https://docs.acme.example/oauth) | `acme` | `google` | "
        "asks the user for `site` first (tenant form); PKCE S256 upstream; scopes separated by `,`; JSON token request; "
        "client secret in the body; link context kept in the refresh token; form-encoded answer; no default lifetime | "
        "2026-11-02 | [2027-03-01](https://acme.example/news) → `acme-two` |"
    )
    variant = next(line for line in text.splitlines() if "`acme-mail` |" in line)
    assert variant.startswith("| [Acme Mail](https://docs.acme.example/mail) | `acme-mail` | `google` | extends `acme`; asks the user")
    assert "| 2026-11-02 |" in variant  # the base's check date, merged
    assert "| unknown | `bare` | `alexa` | plain RFC 6749 | unknown | — |" in text
    assert "3 mappings; 2 say where their facts come from." in text


def test_a_pipe_in_a_name_does_not_break_the_table(tmp_path: Path) -> None:
    root = _root(tmp_path, {"pipe": BASE.replace("name: Acme ID", "name: 'Acme | ID'")})
    assert "| [Acme \\| ID](https://docs.acme.example/oauth) |" in providers_page.render(providers_page.shipped(root / "mappings"))


def test_gateway_schema_writes_the_page_and_check_fails_when_it_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _root(tmp_path, {"acme": BASE})
    assert main(["schema", "--docs", "--root", str(root)]) == 0
    page = root / providers_page.PAGE
    assert "`acme`" in page.read_text(encoding="utf-8")
    assert main(["schema", "--check", "--docs", "--root", str(root)]) == 0
    (root / "mappings" / "bare.yaml").write_text(ALEXA_MAPPING, encoding="utf-8")
    capsys.readouterr()
    assert main(["schema", "--check", "--docs", "--root", str(root)]) == 1  # a new mapping: the page is stale
    assert f"{page}: stale (run `gateway schema --docs`)" in capsys.readouterr().err


def test_a_broken_mapping_is_said_not_written_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _root(tmp_path, {"acme": BASE.replace("encoding: json", "encoding: xml")})
    assert main(["schema", "--docs", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "upstream.token.encoding: must be one of form, json, query, not 'xml'" in err
    assert not (root / providers_page.PAGE).exists()
