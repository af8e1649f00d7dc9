"""MkDocs hooks: the pages that live beside the code join the site, and links to code stay honest.

Two guides have their home outside ``docs/``, next to what they describe: ``deploy/README.md``
(the deployment files) and ``CHANGELOG.md`` (the repository's root). Both are added to the site
as generated pages (``deploy.md``, ``changelog.md``) instead of being copied, so each fact keeps
one home. Any page may link to a file of the repository (``../mappings/schema.json``), which
works where the Markdown is read beside the code; on the site such a link would point nowhere,
so it becomes the path in code type. Links between pages are left to MkDocs, which checks them
(``mkdocs build --strict``).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
#: Repository files that are pages of the site, by their path in the repository.
INCLUDED = {"deploy/README.md": "deploy.md", "CHANGELOG.md": "changelog.md"}
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]+)\]\((?P<target>[^)\s]+)\)")


def on_files(files: Files, config: Any) -> Files:
    """Add the guides that live beside the code as generated pages."""
    for source, page in INCLUDED.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=rewrite_links(text, posixpath.dirname(source))))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Point the links of a page written in ``docs/`` at the site, or at the code as code."""
    if page.file.generated_by is not None:
        return markdown  # rewritten in on_files, relative to its own folder
    return rewrite_links(markdown, posixpath.join("docs", posixpath.dirname(page.file.src_uri)))


def rewrite_links(markdown: str, folder: str) -> str:
    """Rewrite each relative link of a Markdown text found in ``folder`` (repository-relative)."""

    def one(match: re.Match[str]) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match[0]  # a URL, an anchor on the same page, or a site path
        path, _, anchor = target.partition("#")
        in_repo = posixpath.normpath(posixpath.join(folder, path))
        if in_repo in INCLUDED:
            return f"[{match['text']}]({INCLUDED[in_repo]}{'#' + anchor if anchor else ''})"
        if in_repo.startswith("docs/") and in_repo.endswith(".md"):
            page = posixpath.relpath(in_repo, "docs")
            return f"[{match['text']}]({page}{'#' + anchor if anchor else ''})"
        if match["text"].startswith("`"):
            return f"`{in_repo}`"  # the link showed a path: show the path from the repository's root
        return f"{match['text']} (`{in_repo}`)"

    return LINK.sub(one, markdown)
