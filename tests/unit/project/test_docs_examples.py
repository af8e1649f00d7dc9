"""The documented examples are real: the configuration page's gateway.yaml and the mapping
reference's complete mapping load without a problem, and the mapping's examples pass.
Documentation that drifts from the loader fails here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from support.oauth import load_mapping

from gateway.config.settings import load_config
from gateway.oauth.seal import generate_key
from gateway.upstream.examples import run_examples

ROOT = Path(__file__).resolve().parents[3]


def yaml_block_after(heading: str, page: str) -> str:
    text = (ROOT / page).read_text(encoding="utf-8")
    start = text.index(heading)
    match = re.search(r"```yaml\n(.*?)```", text[start:], re.S)
    assert match, f"no yaml block after {heading!r} in {page}"
    return match.group(1)


def test_the_configuration_example_loads(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(yaml_block_after("## Configuration", "docs/configuration.md"), encoding="utf-8")
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    (tmp_path / "fullchain.pem").write_text("cert")
    (tmp_path / "privkey.pem").write_text("key")
    keys_file = tmp_path / "keys"
    keys_file.write_text(generate_key() + "\n")
    text = (tmp_path / "gateway.yaml").read_text().replace("/run/secrets/gateway-keys", str(keys_file))
    (tmp_path / "gateway.yaml").write_text(text)
    env = {"GATEWAY_KEY": generate_key(), "GATEWAY_LINK_KEY": generate_key()}
    for name in ("GITHUB", "WITHINGS"):
        env |= {f"{name}_CLIENT_ID": "id", f"{name}_CLIENT_SECRET": "secret-value",
                f"{name}_PLATFORM_CLIENT_ID": "alexa", f"{name}_PLATFORM_CLIENT_SECRET": "platform-secret"}
    config = load_config(tmp_path / "gateway.yaml", env=env)
    assert sorted(config.providers) == ["github", "withings"]
    assert config.public_url == "https://link.example.com"
    assert len(config.keys) == 2  # GATEWAY_KEY, then the keys file (GATEWAY_OLD_KEY is empty)
    assert config.link_keys == (env["GATEWAY_LINK_KEY"],)


def test_the_mapping_example_loads_and_its_examples_pass(tmp_path: Path) -> None:
    env = {"ALEXA_CLIENT_SECRET": "alexa-secret", "GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": "secret"}
    mapping = load_mapping(tmp_path, yaml_block_after("A complete example, GitHub for Alexa", "docs/mapping-reference.md"), name="github", env=env)
    assert len(mapping.examples) == 2
    assert run_examples(mapping) == []
