"""MkDocs hook: figures kept in the repository (``examples/figures``, ``benchmarks/results``)
appear in the site under ``repo/``, so a page links ``repo/benchmarks/results/x.png``
instead of holding a copy. Only the files pages link are added; a link to a file the
repository lacks stays unresolved, which ``mkdocs build --strict`` refuses."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

LINK = re.compile(r"\]\((?:\.\./)*repo/([^)\s#]+)")


def on_files(files: Files, config) -> Files:
    """Add every ``repo/<path>`` a page links, read from ``<path>`` in the repository."""
    root = Path(config["config_file_path"]).parent
    docs = Path(config["docs_dir"])
    linked = {path for page in docs.rglob("*.md") for path in LINK.findall(page.read_text())}
    for path in sorted(linked):
        if (root / path).is_file():
            files.append(File.generated(config, f"repo/{path}", abs_src_path=str(root / path)))
    return files
