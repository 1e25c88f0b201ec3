"""mkdocs hook (mkdocs.yml ``hooks:``): a page's links to repository files outside docs/.

A page under docs/ links a source file or another README by its relative path
(``[`trackd/gateway/hop.py`](../trackd/gateway/hop.py)``), which a repository browser follows.
mkdocs cannot publish such a file, and its strict mode would fail on the link, so this hook
rewrites each one before mkdocs reads the page: to the file on ``repo_url`` when mkdocs.yml
sets one, else to the link's text alone. A link to a path that does not exist is a warning,
which strict mode makes an error, as mkdocs does for a link between pages.

Imports only mkdocs and the standard library; nothing of trackd's.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import unquote

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

log = logging.getLogger(f"mkdocs.plugins.{__name__}")

# An inline link or image, [text](target), whose target has no spaces or parentheses.
LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def on_page_markdown(markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    """The page's Markdown with every link that leaves docs/ rewritten for the site."""
    root = Path(config.config_file_path).resolve().parent
    docs = Path(config.docs_dir).resolve()
    source = page.file.abs_src_path
    if source is None:  # a page made by a plugin: it has no links of the repository's
        return markdown
    here = Path(source).resolve().parent

    def rewrite(link: re.Match[str]) -> str:
        bang, text, target = link.groups()
        if EXTERNAL.match(target) or target.startswith(("#", "/")):
            return link.group(0)
        path, _, fragment = target.partition("#")
        resolved = (here / unquote(path)).resolve()
        if resolved.is_relative_to(docs):
            return link.group(0)  # between pages: mkdocs itself checks these
        if not resolved.is_relative_to(root) or not resolved.exists():
            log.warning("Doc file '%s' links '%s', which is no file of the repository",
                        page.file.src_uri, target)
            return link.group(0)
        if config.repo_url:
            url = f"{config.repo_url.rstrip('/')}/blob/HEAD/{resolved.relative_to(root).as_posix()}"
            return f"{bang}[{text}]({url}{'#' + fragment if fragment else ''})"
        return text

    lines = markdown.split("\n")
    fenced = False
    for number, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines[number] = LINK.sub(rewrite, line)
    return "\n".join(lines)
