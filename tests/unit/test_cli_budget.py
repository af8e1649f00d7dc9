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
