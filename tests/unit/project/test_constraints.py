"""constraints.txt pins every dependency pyproject.toml names, each to one version from an index."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_line_is_a_pin_and_every_dependency_is_pinned() -> None:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+", line), f"not a pin: {line!r}"
        name, version = line.split("==")
        pins[_canonical(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    for requirement in wanted:
        match = _NAME.match(requirement)
        assert match is not None, requirement
        assert _canonical(match.group(1)) in pins, f"{requirement} is not pinned in constraints.txt"


#: APIs the package uses and the first release of the dependency that has them.
_NEEDS = [("aiohttp", "web.RequestKey(", (3, 14))]


def test_lower_bounds_admit_no_release_without_an_api_the_code_uses() -> None:
    """A lower bound is a promise: `pip install gateway` next to an older aiohttp must work."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    code = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "gateway").rglob("*.py"))
    for dependency, api, first in _NEEDS:
        if api not in code:
            continue
        spec = next(req for req in project["dependencies"] if _canonical(_NAME.match(req).group(1)) == dependency)  # type: ignore[union-attr]  # every entry starts with a name
        bound = re.search(r">=\s*([0-9.]+)", spec)
        assert bound is not None, f"{spec}: no lower bound"
        assert tuple(int(part) for part in bound.group(1).split(".")) >= first, f"{spec}: {api} needs {dependency} {first}"
