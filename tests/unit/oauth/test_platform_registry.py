"""One registry of platform knowledge (gateway/config/platforms.py): every profile's redirect rules,
sample redirect URI, token budget and PKCE demand, and the tools that read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.commands import main
from gateway.config.platforms import (
    ALEXA_BUDGET,
    PKCE_S256_PROFILES,
    PLATFORMS,
    PROFILES,
    STRICTEST_BUDGET,
    build_policy,
    platform_of,
    sample_redirect_uri,
)
from gateway.oauth.seal import generate_key


def test_the_registry_names_every_profile() -> None:
    assert PROFILES == ("alexa", "google", "smartthings", "alexa-mcp", "none")
    assert all(PLATFORMS[name].profile == name for name in PROFILES)
    assert PKCE_S256_PROFILES == {"alexa-mcp"}
    assert platform_of("no-such-profile") is PLATFORMS["none"]


def test_token_budgets() -> None:
    """Alexa gives up on /token after 4.5 s (docs/providers); the others document no limit."""
    assert {name: platform.token_budget for name, platform in PLATFORMS.items()} == {
        "alexa": ALEXA_BUDGET, "alexa-mcp": ALEXA_BUDGET, "google": None, "smartthings": None, "none": None,
    }
    assert ALEXA_BUDGET == STRICTEST_BUDGET == 4.5


@pytest.mark.parametrize("profile", [name for name in PROFILES if name != "none"])
def test_each_sample_is_a_uri_its_own_policy_allows_and_no_other_profile_does(profile: str) -> None:
    sample = sample_redirect_uri(profile, [], [], [])
    assert sample is not None and build_policy(profile).allows(sample)
    others = {name for name in PROFILES if build_policy(name).allows(sample)}
    assert others == ({"alexa", "alexa-mcp"} if profile.startswith("alexa") else {profile})


def test_pinned_ids_shape_the_sample_and_the_rules() -> None:
    sample = sample_redirect_uri("alexa", [], ["M2VENDOR"], [])
    assert sample == "https://pitangui.amazon.com/api/skill/link/M2VENDOR"
    assert build_policy("alexa", vendor_ids=["M2VENDOR"]).allows(sample)
    assert not build_policy("alexa", vendor_ids=["M2OTHER"]).allows(sample)
    google = sample_redirect_uri("google", [], [], ["my-project"])
    assert google == "https://oauth-redirect.googleusercontent.com/r/my-project"
    assert build_policy("google", project_ids=["my-project"]).allows(google)


def test_no_profile_samples_the_first_exact_uri() -> None:
    assert sample_redirect_uri("none", ["https://app.example/*/cb", "https://app.example/cb"], [], []) == "https://app.example/cb"
    assert sample_redirect_uri("none", ["https://app.example/*/cb"], [], []) is None
    assert build_policy("none").rules == ()


MAPPING = """\
platform: {{profile: {profile}, client_id: alexa, client_secret: alexa-secret, redirect_uris: ["https://app.example/cb"]}}
upstream:
  client_id: up
  authorize: {{url: "https://provider.example/authorize"}}
  token: {{url: "https://provider.example/token", timeout: 6}}
"""


@pytest.mark.parametrize(("profile", "warned"), [("alexa-mcp", True), ("google", False), ("smartthings", False)])
def test_gateway_check_warns_by_the_registrys_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: str, warned: bool
) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "p.yaml").write_text(MAPPING.format(profile=profile))
    (tmp_path / "gateway.yaml").write_text(f'keys: ["{generate_key()}"]\npublic_url: https://link.example.com\n')
    assert main(["check", "--config", str(tmp_path / "gateway.yaml")]) == 0
    assert ("budget" in capsys.readouterr().err) is warned


def test_console_pages_come_from_the_registry() -> None:
    assert {platform.console for platform in PLATFORMS.values()} == {"alexa", "google", None}
    with pytest.raises(SystemExit):
        main(["console", "smartthings", "x"])  # no console page for it: argparse refuses the choice
