"""The documentation site: a short front door, every page in the navigation, a strict build.

The README is the front door (at most 200 lines); everything else is a page of the MkDocs site
built from ``docs/`` (``mkdocs.yml``), with the two guides that live beside the code joining it as
generated pages (``docs/_hooks/site.py``). A page missing from the navigation, a navigation entry
with no page, a broken link or anchor (``mkdocs build --strict``) fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
#: Pages the build adds (docs/_hooks/site.py) rather than files in docs/.
GENERATED_PAGES = {"deploy.md": "deploy/README.md", "changelog.md": "CHANGELOG.md"}


class _Loader(yaml.SafeLoader):
    """mkdocs.yml's ``!!python/name:`` tags name Python objects; the navigation needs none of them."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix)


def nav_pages(entries: Any) -> list[str]:
    if isinstance(entries, str):
        return [entries]
    if isinstance(entries, list):
        return [page for entry in entries for page in nav_pages(entry)]
    if isinstance(entries, dict):
        return [page for value in entries.values() for page in nav_pages(value)]
    return []


def test_the_readme_is_a_short_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("\n") <= 200
    for heading in ("## Try it", "## Run the tests", "## Documentation"):
        assert heading in readme


def test_every_page_is_in_the_navigation_and_every_entry_is_a_page() -> None:
    site = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)
    listed = nav_pages(site["nav"])
    assert len(listed) == len(set(listed)), "a page is listed twice"
    in_docs = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert set(listed) == in_docs | set(GENERATED_PAGES)
    for source in GENERATED_PAGES.values():
        assert (ROOT / source).is_file()


#: History told as work items or sessions, or one machine's paths (in the text itself, not inside a URL).
_HISTORY = re.compile(r"\bissues? \d+|\bissue's\b|(?<![\w./-])/(work|root|home)/", re.I)


def test_no_file_of_the_project_speaks_of_issues_sessions_or_a_machine() -> None:
    """The project's files speak of the project as it is; its history is the changelog's, in the
    project's own words."""
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "deploy").rglob("*.md")]
    code = [
        path for folder in ("gateway", "bench", "tests", "deploy", "docs") for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".yaml", ".yml", ".sh", ".mjs", ".toml"} and "node_modules" not in path.parts
        and path != Path(__file__).resolve()
    ]
    for path in [*pages, *code, ROOT / "pyproject.toml", ROOT / ".ci" / "run", ROOT / "Dockerfile"]:
        found = _HISTORY.search(path.read_text(encoding="utf-8"))
        assert found is None, f"{path.relative_to(ROOT)}: {found.group(0)!r}"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    built = tmp_path / "site"
    for page in ("index.html", "deploy/index.html", "changelog/index.html", "mapping-guide/index.html"):
        assert (built / page).is_file(), page
    # A link to a file of the repository becomes its path, not a link to nowhere.
    deploy = (built / "deploy" / "index.html").read_text(encoding="utf-8")
    assert 'href="../Dockerfile"' not in deploy and "<code>Dockerfile</code>" in deploy
