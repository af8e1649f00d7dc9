"""``gateway check`` warns when an Alexa mapping's upstream deadline is not under Alexa's 4.5 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.commands import main
from gateway.oauth.seal import generate_key

MAPPING = """\
platform: {{profile: {profile}, client_id: alexa, client_secret: alexa-secret, redirect_uris: ["https://app.example/cb"]}}
upstream:
  client_id: up
  authorize: {{url: "https://provider.example/authorize"}}
  token: {{url: "https://provider.example/token"{timeout}}}
"""


@pytest.mark.parametrize(
    ("profile", "timeout", "warned"),
    [("alexa", ", timeout: 6", True), ("alexa", "", False), ("alexa", ", timeout: 4.5", True), ("none", ", timeout: 6", False)],
)
def test_budget_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: str, timeout: str, warned: bool) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "p.yaml").write_text(MAPPING.format(profile=profile, timeout=timeout))
    (tmp_path / "gateway.yaml").write_text(f'keys: ["{generate_key()}"]\npublic_url: https://link.example.com\n')
    assert main(["check", "--config", str(tmp_path / "gateway.yaml")]) == 0  # a warning, not an error
    assert ("Alexa's 4.5 s budget" in capsys.readouterr().err) is warned


TENANT = """\
platform: {profile: alexa, client_id: alexa, client_secret: alexa-secret-that-is-long-enough}
tenant: {name: shop, pattern: '[a-z0-9-]+', label: Your shop}
upstream:
  client_id: up
  authorize: {url: "https://{shop}.provider.example/authorize"}
  token: {url: "https://{shop}.provider.example/token"}
"""


@pytest.mark.parametrize(("link_keys", "warned"), [(False, True), (True, False)])
def test_a_context_keeping_mapping_without_link_keys_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], link_keys: bool, warned: bool
) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "shop.yaml").write_text(TENANT)
    (tmp_path / "mappings" / "plain.yaml").write_text(MAPPING.format(profile="alexa", timeout=""))
    more = f'link_keys: ["{generate_key()}"]\n' if link_keys else ""
    (tmp_path / "gateway.yaml").write_text(f'keys: ["{generate_key()}"]\npublic_url: https://link.example.com\n{more}')
    assert main(["check", "--config", str(tmp_path / "gateway.yaml")]) == 0  # a warning, not an error
    err = capsys.readouterr().err
    assert ("no link_keys" in err) is warned, err
    assert "plain.yaml: warning: this mapping keeps context" not in err  # only the one that keeps context
    if warned:
        assert "shop.yaml: warning: this mapping keeps context" in err and "first rotation" in err
