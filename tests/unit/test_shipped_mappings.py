"""Every mapping the project ships loads without a problem and passes its own ``examples:`` offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.examples import run_examples
from gateway.config.extends import load_mapping_document
from gateway.config.mapping import parse_mapping
from gateway.config.yamlfile import Problems
from gateway.demo import demo_mapping_file

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "mappings").glob("*.yaml")) + [Path(demo_mapping_file())]


@pytest.mark.parametrize("file", SHIPPED, ids=[file.stem for file in SHIPPED])
def test_shipped_mapping_loads_and_passes_its_examples(file: Path) -> None:
    problems = Problems()
    data = load_mapping_document(file, problems, env={"GATEWAY_PUBLIC_URL": "https://link.example.com"}, missing_env_ok=True)
    mapping = parse_mapping(file.stem, data, file=str(file), problems=problems)
    assert not problems, "\n".join(map(str, problems.items))
    assert mapping is not None
    assert mapping.examples, "every shipped mapping documents its provider with examples"
    assert run_examples(mapping) == []
