"""The reference tables of README.md and docs/mapping-guide.md, generated from the models (placeholder)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["stale"]


def stale(root: Path, *, write: bool) -> list[str]:
    return []
