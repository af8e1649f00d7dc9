"""The lower layers point down: config imports nothing of the gateway above it, oauth only config,
upstream only config and oauth (docs/architecture.md; `lint-imports` checks every layer).

Every import counts, at the top of a module, inside a function or under ``TYPE_CHECKING``: a guard
that hides an upward import from the interpreter still ties the layers together for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "gateway"
#: What each lower layer may import of the gateway (besides itself and ``gateway`` for its version).
ALLOWED = {"config": set(), "oauth": {"config"}, "upstream": {"config", "oauth"}}


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_lower_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in _imported(path):
            parts = name.split(".")
            if parts[0] != "gateway" or len(parts) < 2 or parts[1] == layer:
                continue  # outside the gateway, or its own layer
            top_module = (PACKAGE / f"{parts[1]}.py").is_file()  # a module outside every layer
            if not (PACKAGE / parts[1]).is_dir() and not top_module:
                continue  # a name in gateway/__init__.py (its __version__)
            if top_module or parts[1] not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not wrong, "\n".join(wrong)
