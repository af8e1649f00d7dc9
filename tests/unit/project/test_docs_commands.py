"""Every command the docs show is run: a newcomer who copies one gets what the page promises.

Fenced ``console`` and ``sh`` blocks of every page (README.md, docs/*.md and the pages that live
beside the code: deploy/README.md, CHANGELOG.md) are extracted; each ``gateway …``
command in them (``$ ``-prefixed in a console block) runs offline, from the repository root
against the shipped gateway.yaml, and must exit 0. A block that needs a platform, a provider's
secrets or a running server says so in a marker comment on the line before its fence,
``<!-- docs-test: skip: why -->``; an unmarked block with any other command fails here, so a new
example can't slip in untested.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>console|sh|shell|bash)[ \t]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(?P<why>[^>]*?)\s*-->\s*$")


def blocks() -> list[tuple[str, str, str | None, list[str]]]:
    """(file, first line, skip reason or None, commands) for every shell block of the docs."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").splitlines()
            marker = SKIP.search(before[-1]) if before else None
            lines = [line.strip() for line in match["body"].splitlines() if line.strip()]
            if match["lang"] == "console":
                commands = [line[2:] for line in lines if line.startswith("$ ")]
            else:
                commands = [line for line in lines if not line.startswith("#")]
            where = f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
            found.append((where, match["lang"], marker["why"] if marker else None, commands))
    return found


BLOCKS = blocks()


def test_the_docs_have_runnable_and_skipped_examples() -> None:
    assert any(why is None for _, _, why, _ in BLOCKS)
    assert all(why for _, _, why, _ in BLOCKS if why is not None), "a skip marker must say why"
    assert {doc.name for doc in DOCS} >= {"README.md", "quickstart.md", "alexa.md", "google.md", "smartthings.md", "troubleshooting.md"}


@pytest.mark.parametrize(("where", "lang", "why", "commands"), [pytest.param(*b, id=b[0]) for b in BLOCKS])
def test_each_shown_command_runs(where: str, lang: str, why: str | None, commands: list[str]) -> None:
    if why is not None:
        pytest.skip(f"{where}: {why}")
    assert commands, f"{where}: a shell block with no command"
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "gateway", f"{where}: {command!r} can't run offline here: mark the block <!-- docs-test: skip: why -->"
        result = subprocess.run([sys.executable, "-m", "gateway", *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{where}: {command!r} exited {result.returncode}: {result.stderr or result.stdout}"
        assert result.stdout.strip(), f"{where}: {command!r} printed nothing"
