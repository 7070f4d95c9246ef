"""MkDocs hook: links from docs/*.md to repository files outside docs/ (configs, examples, bench results) point
into the site, which carries a copy of each linked file under repo/. Links to Markdown outside docs/ are left as
they are, so the strict build still reports them."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

LINK = re.compile(r"\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)")  # ](../path#anchor)
COPIES = "repo"  # the site's folder of linked repository files


def _repo_path(link: str, page_uri: str, docs: Path) -> str | None:
    """The linked file's path from the repository root, when it lies outside docs/ and is not Markdown."""
    target = (docs / posixpath.dirname(page_uri) / link).resolve()
    root = docs.resolve().parent
    if target.suffix == ".md" or not target.is_file() or not target.is_relative_to(root):
        return None
    relative = target.relative_to(root)
    return None if relative.parts[0] == docs.name else relative.as_posix()


def on_files(files: Files, config) -> Files:
    docs = Path(config["docs_dir"])
    linked = set()
    for page in files.documentation_pages():
        for link, _ in LINK.findall(Path(page.abs_src_path).read_text(encoding="utf-8")):
            path = _repo_path(link, page.src_uri, docs)
            if path is not None:
                linked.add(path)
    for path in sorted(linked):
        files.append(File.generated(config, f"{COPIES}/{path}", abs_src_path=str(docs.resolve().parent / path)))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    docs = Path(config["docs_dir"])

    def relink(match: re.Match) -> str:
        path = _repo_path(match[1], page.file.src_uri, docs)
        if path is None:
            return match[0]
        copy = posixpath.relpath(f"{COPIES}/{path}", posixpath.dirname(page.file.src_uri) or ".")
        return f"]({copy}{match[2] or ''})"

    return LINK.sub(relink, markdown)
