"""The demo is optional: the core never imports it, finds it by name, and says so when it is missing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import optional
from gateway.config.settings import load_config
from gateway.config.yamlfile import ConfigError
from gateway.oauth.seal import generate_key

PACKAGE = Path(__file__).resolve().parents[3] / "gateway"


def test_no_module_outside_the_demo_imports_it() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "demo"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert not name.startswith(optional.DEMO_MODULE), f"{path.relative_to(PACKAGE.parent)} imports {name}"


def test_a_gateway_without_the_demo_never_loads_it(tmp_path: Path) -> None:
    """A real process: config, app and CLI loaded for a non-demo config leave gateway.demo unloaded."""
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "acme.yaml").write_text(
        "platform: {profile: none, redirect_uris: ['https://platform.example/cb'], client_id: p, client_secret: platform-secret}\n"
        "upstream: {client_id: u, client_secret: s, authorize: {url: 'https://auth.example/a'}, token: {url: 'https://auth.example/t'}}\n"
    )
    (tmp_path / "gateway.yaml").write_text(f"keys: ['{generate_key()}']\npublic_url: https://link.example\n")
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from gateway.cli.commands import main\n"
        "from gateway.config.settings import load_config\n"
        "from gateway.web.app import create_app\n"
        f"create_app(load_config(Path({str(tmp_path / 'gateway.yaml')!r})))\n"
        f"assert main(['check', '--config', {str(tmp_path / 'gateway.yaml')!r}]) == 0\n"
        "assert 'gateway.demo' not in sys.modules, 'the demo was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_demo_true_without_the_demo_is_one_clear_problem_at_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the production image, where gateway/demo is not installed (deploy/test-image.sh checks it there)."""
    for name in [name for name in sys.modules if name.startswith(optional.DEMO_MODULE)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, optional.DEMO_MODULE, None)  # what `import` sees when it is absent
    assert optional.demo() is None
    path = tmp_path / "gateway.yaml"
    path.write_text(f"keys: ['{generate_key()}']\npublic_url: https://link.example\nproviders: []\ndemo: true\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert [str(problem) for problem in err.value.problems] == [f"{path}:4: {optional.NO_DEMO}"]


def test_the_installed_demo_registers_itself() -> None:
    demo = optional.demo()
    assert demo is not None and demo.mapping_file().name == "demo.yaml" and demo.mapping_file().is_file()
