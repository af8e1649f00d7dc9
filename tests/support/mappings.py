"""A shipped mapping with the mappings it ``extends:``, for tests that copy a mapping into a folder of its own."""

from __future__ import annotations

from pathlib import Path

from gateway.config.extends import load_mapping_document
from gateway.config.yamlfile import Problems

__all__ = ["with_bases"]


def with_bases(file: Path) -> list[Path]:
    """``file`` and the files it extends, nearest base first (a copied variant needs its bases beside it)."""
    problems = Problems()
    document = load_mapping_document(file, problems, env={}, missing_env_ok=True)
    assert not problems, "\n".join(map(str, problems.items))
    return [file, *(Path(base) for base in getattr(document, "bases", None) or ())]
