"""``gateway init`` as a command: files, flags, questions on a terminal, the first gateway.yaml,
the metadata a provider publishes, and the YAML with comments it writes."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.cli import init
from gateway.cli.commands import main
from gateway.config.discovery import expected_issuer, metadata_urls
from gateway.config.extends import load_mapping_document
from gateway.config.settings import load_config
from gateway.config.yamlfile import Problems
from gateway.init.metadata import client_auth_of, upstream_from_metadata
from gateway.init.yamltext import Path as Path_
from gateway.init.yamltext import render

ROOT = Path(__file__).resolve().parents[3]
TOKEN = {"access_token": "at-1", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rt-1", "scope": "read write"}
ENDPOINTS = ["--authorize-url", "https://acme.example/oauth/authorize", "--token-url", "https://acme.example/oauth/token"]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    init.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["init", *argv])


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "token.json").write_text(json.dumps(TOKEN))
    (tmp_path / "error.txt").write_text('HTTP/1.1 400 Bad Request\nContent-Type: application/json\n\n{"error": "invalid_grant", "error_description": "used"}')
    yield tmp_path


def test_flags_write_the_mapping_and_a_first_gateway_yaml(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "acme", "--answer", "token.json", "--error-answer", "error.txt", *ENDPOINTS, "--public-url", "https://link.example.com"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "https://link.example.com/acme/callback" in printed
    assert "acme.yaml: warning: no about:" in captured.err  # gateway check's warnings too
    assert "gateway console alexa acme" in printed and "gateway linktest acme" in printed
    mapping = yaml.safe_load((folder / "mappings" / "acme.yaml").read_text())
    assert [e["expect"] for e in mapping["examples"]] == [
        {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-1", "scope": "read write"},
        {"error": "invalid_grant", "error_description": "used"},
    ]
    assert mapping["examples"][1]["status"] == 400
    text = (folder / "gateway.yaml").read_text()
    key = next(line.split("=", 1)[1] for line in printed.splitlines() if line.strip().startswith("GATEWAY_KEY="))
    assert key not in text and "${GATEWAY_KEY}" in text
    env = {"GATEWAY_KEY": key, "ACME_CLIENT_ID": "c", "ACME_CLIENT_SECRET": "s", "ACME_PLATFORM_CLIENT_ID": "p", "ACME_PLATFORM_CLIENT_SECRET": "platform-secret"}
    config = load_config(folder / "gateway.yaml", env=env)
    assert list(config.providers) == ["acme"] and config.public_url == "https://link.example.com"


def test_it_never_overwrites_without_force(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "mappings").mkdir()
    (folder / "mappings" / "acme.yaml").write_text("mine\n")
    assert main(["init", "acme", "--answer", "token.json", *ENDPOINTS]) == 2
    assert "exists" in capsys.readouterr().err and (folder / "mappings" / "acme.yaml").read_text() == "mine\n"
    assert main(["init", "acme", "--answer", "token.json", *ENDPOINTS, "--force"]) == 0
    assert "at-1" in (folder / "mappings" / "acme.yaml").read_text()


def test_an_existing_gateway_yaml_is_kept_and_its_providers_named(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "gateway.yaml").write_text("public_url: https://gw.example\nproviders: [other]\n")
    assert main(["init", "acme", "--answer", "token.json", *ENDPOINTS]) == 0
    printed = capsys.readouterr().out
    assert (folder / "gateway.yaml").read_text() == "public_url: https://gw.example\nproviders: [other]\n"
    assert "https://gw.example/acme/callback" in printed and "Add acme to providers:" in printed
    assert "GATEWAY_KEY" not in printed


def test_without_flags_and_without_a_terminal_it_says_what_is_missing(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "acme"]) == 2
    assert "--discovery URL, --answer FILE or --like OTHER" in capsys.readouterr().err
    assert main(["init", "acme", "--answer", "token.json"]) == 2
    assert "endpoints are missing" in capsys.readouterr().err
    assert main(["init", "Acme!", "--answer", "token.json", *ENDPOINTS]) == 2
    assert not (folder / "mappings").exists()


def test_on_a_terminal_it_asks_one_thing_at_a_time(folder: Path) -> None:
    replies = iter(["", "", "https://acme.example/a", "https://acme.example/t", "token.json", "", "error.txt", "", "google", "https://gw.example"])
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return next(replies)

    assert init.run_init(_args("acme"), ask=ask, interactive=True) == 0
    assert len(asked) == 10 and next(replies, None) is None
    mapping = yaml.safe_load((folder / "mappings" / "acme.yaml").read_text())
    assert mapping["platform"]["profile"] == "google" and mapping["upstream"]["token"]["url"] == "https://acme.example/t"
    assert [e.get("status", 200) for e in mapping["examples"]] == [200, 400]
    assert "public_url: https://gw.example" in (folder / "gateway.yaml").read_text()


def test_questions_left_unanswered_write_nothing(folder: Path) -> None:
    def ask(question: str) -> str:
        raise EOFError

    assert init.run_init(_args("acme"), ask=ask, interactive=True) == 130
    assert not (folder / "mappings").exists() and not (folder / "gateway.yaml").exists()


def test_with_flags_it_never_asks(folder: Path) -> None:
    def ask(question: str) -> str:
        raise AssertionError(f"asked {question!r}")

    assert init.run_init(_args("acme", "--answer", "token.json", *ENDPOINTS), ask=ask, interactive=True) == 0


def _withings(folder: Path) -> None:
    (folder / "mappings").mkdir(exist_ok=True)
    shutil.copy(ROOT / "mappings" / "withings.yaml", folder / "mappings" / "withings.yaml")


def test_like_extends_a_sibling_of_the_same_folder(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _withings(folder)
    assert main(["init", "acme-health", "--like", "withings", "--public-url", "https://gw.example"]) == 0
    written = yaml.safe_load((folder / "mappings" / "acme-health.yaml").read_text())
    assert written == {
        "extends": "withings",
        "platform": {"client_id": "${ACME_HEALTH_PLATFORM_CLIENT_ID}", "client_secret": "${ACME_HEALTH_PLATFORM_CLIENT_SECRET}"},
        "upstream": {"client_id": "${ACME_HEALTH_CLIENT_ID}", "client_secret": "${ACME_HEALTH_CLIENT_SECRET}"},
    }
    assert "its 5 example(s) give what they expect" in capsys.readouterr().out  # the sibling's, inherited


def test_like_copies_a_sibling_into_another_folder(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _withings(folder)
    assert main(["init", "acme-health", "--like", "withings", "--out", "elsewhere/acme-health.yaml", "--public-url", "https://gw.example"]) == 0
    text = (folder / "elsewhere" / "acme-health.yaml").read_text()
    assert "WITHINGS" not in text and "${ACME_HEALTH_CLIENT_ID}" in text and "Copied from withings.yaml" in text
    copied, sibling = yaml.safe_load(text), yaml.safe_load((ROOT / "mappings" / "withings.yaml").read_text())
    assert copied["upstream"]["answer"] == sibling["upstream"]["answer"] and copied["examples"] == sibling["examples"]
    assert "about" not in copied
    assert "its 5 example(s) give what they expect" in capsys.readouterr().out


def test_like_with_answers_replaces_what_they_show(folder: Path) -> None:
    """The answers' reading replaces the sibling's (under extends: a null puts a default back); what
    they do not show (errors, here) stays the sibling's, unless it would misread these answers."""
    _withings(folder)
    (folder / "wrapped.json").write_text(json.dumps({"status": 0, "body": TOKEN}))
    assert main(["init", "acme", "--like", "withings", "--answer", "wrapped.json", "--platform", "google"]) == 0
    written = yaml.safe_load((folder / "mappings" / "acme.yaml").read_text())
    assert written["upstream"]["answer"] == {"format": "json", "root": "body"} and written["upstream"]["scope_separator"] is None
    assert written["platform"]["profile"] == "google" and len(written["examples"]) == 1
    merged = load_mapping_document(folder / "mappings" / "acme.yaml", Problems(), missing_env_ok=True)
    assert merged["upstream"]["answer"]["error"]["when"] == "status != `0`"  # the sibling's, kept
    assert merged["upstream"]["token"]["params"] == {"add": {"action": "requesttoken"}}

    # A flat answer has no status: Withings' error condition would call it an error.
    assert main(["init", "acme", "--like", "withings", "--answer", "token.json", "--force"]) == 0
    text = (folder / "mappings" / "acme.yaml").read_text()
    assert yaml.safe_load(text)["upstream"]["answer"] == {"format": "json", "root": None, "error": None}
    assert "the sibling's error reading marks token.json as an error" in text


def test_a_mapping_that_fails_its_checks_is_said_so(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "acme", "--answer", "token.json", *ENDPOINTS, "--out", "mappings/Not A Name.yaml"]) == 1
    err = capsys.readouterr().err
    assert "must be lower-case letters" in err and "fix them, then run `gateway check`" in err


def test_urls_are_judged_before_anything_is_written(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "acme", "--answer", "token.json", "--authorize-url", "http://acme.example/a", "--token-url", "https://acme.example/t"]) == 2
    assert "--authorize-url must use https" in capsys.readouterr().err
    assert main(["init", "acme", "--answer", "token.json", *ENDPOINTS, "--public-url", "link.example.com"]) == 2
    assert "--public-url must be an absolute" in capsys.readouterr().err
    assert not (folder / "mappings").exists() and not (folder / "gateway.yaml").exists()


# -- metadata -------------------------------------------------------------------------------------------
DOCUMENT: dict[str, Any] = {
    "issuer": "https://id.example", "authorization_endpoint": "https://id.example/auth", "token_endpoint": "https://id.example/token",
    "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post", "client_secret_basic"],
    "code_challenge_methods_supported": ["plain", "S256"], "scopes_supported": ["openid", "email", "offline_access"],
    "revocation_endpoint": "https://id.example/revoke", "revocation_endpoint_auth_methods_supported": ["client_secret_post"],
    "authorization_response_iss_parameter_supported": True,
}


def test_metadata_gives_the_upstream() -> None:
    draft = upstream_from_metadata(DOCUMENT, "https://id.example")
    assert draft.upstream == {
        "issuer": "https://id.example", "require_iss": True,
        "authorize": {"url": "https://id.example/auth", "pkce": "S256", "scope": "openid offline_access", "params": {"add": {"prompt": "consent"}}},
        "token": {"url": "https://id.example/token", "client_auth": "basic"},
        "revoke": {"url": "https://id.example/revoke", "client_auth": "body"},
    }
    assert "§11" in draft.notes[("upstream", "authorize", "params", "add", "prompt")]
    bare = upstream_from_metadata({k: DOCUMENT[k] for k in ("issuer", "authorization_endpoint", "token_endpoint")}, "u")
    assert bare.upstream["token"]["client_auth"] == "basic" and "pkce" not in bare.upstream["authorize"]


@pytest.mark.parametrize(
    ("methods", "auth", "noted"),
    [
        (None, "basic", False), (["client_secret_basic"], "basic", False), (["client_secret_post"], "body", True),
        (["none"], "none", True), (["private_key_jwt"], "basic", True), (["client_secret_post", "client_secret_basic"], "basic", True),
    ],
)
def test_client_authentication_prefers_basic(methods: list[str] | None, auth: str, noted: bool) -> None:
    assert client_auth_of(methods)[0] == auth and (client_auth_of(methods)[1] is not None) is noted


def test_metadata_urls_and_their_issuers() -> None:
    assert metadata_urls("https://id.example/tenant/") == [
        "https://id.example/tenant/.well-known/openid-configuration", "https://id.example/.well-known/oauth-authorization-server/tenant",
    ]
    assert expected_issuer("https://id.example/.well-known/oauth-authorization-server/tenant") == "https://id.example/tenant"
    assert expected_issuer("https://id.example/t/.well-known/openid-configuration") == "https://id.example/t"
    assert expected_issuer("https://id.example/metadata.json") is None


# -- the YAML with comments -----------------------------------------------------------------------------
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12))
_KEYS = st.text(min_size=1, max_size=8)


@given(st.dictionaries(_KEYS, st.one_of(_SCALARS, st.dictionaries(_KEYS, _SCALARS, max_size=3), st.lists(_SCALARS, max_size=3)), max_size=5))
def test_the_yaml_reads_back_as_the_document(document: dict[str, Any]) -> None:
    notes: dict[Path_, str] = {(key,): "a # note" for key in document}
    assert yaml.safe_load(render(document, notes)) == (document or None)


def test_the_inference_needs_no_web_framework() -> None:
    """The pure modules of gateway.init import the config vocabulary only (no aiohttp, no upstream)."""
    code = (
        "import sys, gateway.init.answers, gateway.init.metadata, gateway.init.samples, gateway.init.yamltext\n"
        "print(sorted(m for m in sys.modules if m.startswith(('aiohttp', 'gateway.upstream', 'gateway.oauth', 'gateway.web'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert done.stdout.strip() == "[]"
