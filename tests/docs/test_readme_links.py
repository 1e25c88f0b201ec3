"""Every relative link in README.md resolves: the file exists in the repository and, for a
link into a Markdown file with a ``#fragment``, the heading exists there. The same for
the links from docs/ to files outside it (bench/README.md#..., source files).

mkdocs checks the links between the pages of docs/ (CI builds it with ``--strict``), and
its hook tools/docs_repo_links.py checks that a file outside docs/ exists; the README and
anchors into files outside docs/ are checked here. Anchors are computed as a repository
browser does (GitHub's rule: lower case, punctuation dropped, each space a hyphen).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# An inline link or image, [text](target); the text may hold one level of brackets.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def relative_links(text: str) -> list[str]:
    """Every link target that is neither a URL nor absolute, outside code."""
    targets = []
    for line in prose_lines(text):
        # A code span may show link syntax without being a link; its text is kept
        # when the span is a link's text ([`trackd/gateway/hop.py`](...)).
        for target in LINK.findall(CODE_SPAN.sub(lambda m: m.group(0).strip("`"), line)):
            if not EXTERNAL.match(target) and not target.startswith("/"):
                targets.append(target)
    return targets


def anchor(heading: str) -> str:
    """The anchor a repository browser gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated heading's later ones get
    ``-1``, ``-2``, ..."""
    found: set[str] = set()
    seen: Counter[str] = Counter()
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if match:
            slug = anchor(match.group(1))
            found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return found


def test_the_anchor_rule() -> None:
    assert anchor("Workers on one machine") == "workers-on-one-machine"
    assert anchor("The shared path: `POST /api/v1/events`") == "the-shared-path-post-apiv1events"
    assert anchor("Scale: workers and instances (`bench/run scale`)") == (
        "scale-workers-and-instances-benchrun-scale")


def test_the_readme_has_links_to_check() -> None:
    # The map of the documentation: a README without relative links checks nothing.
    assert len(relative_links(README.read_text())) >= 10


def check(page: Path, target: str) -> None:
    path, _, fragment = target.partition("#")
    resolved = (page.parent / unquote(path)).resolve() if path else page
    assert resolved.is_relative_to(ROOT), f"{target} leaves the repository"
    assert resolved.exists(), f"{target}: no such file"
    if fragment:
        assert resolved.suffix == ".md", f"{target}: an anchor into a file that is not Markdown"
        assert fragment in anchors(resolved), f"{target}: no such heading in {resolved.name}"


@pytest.mark.parametrize("target", sorted(set(relative_links(README.read_text()))))
def test_each_relative_link_of_the_readme_resolves(target: str) -> None:
    check(README, target)


def links_leaving_docs() -> list[tuple[str, str]]:
    """(page, target) of each link from a page of docs/ to a file outside docs/."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for target in relative_links(page.read_text()):
            path = target.partition("#")[0]
            if path and not (page.parent / unquote(path)).resolve().is_relative_to(DOCS):
                found.append((str(page.relative_to(ROOT)), target))
    return found


def test_the_docs_have_links_leaving_them() -> None:
    # Source files and bench/README.md sections: none found would mean a broken parser.
    assert sum(1 for _, target in links_leaving_docs() if "#" in target) >= 3


@pytest.mark.parametrize(("page", "target"), links_leaving_docs())
def test_each_link_leaving_docs_resolves(page: str, target: str) -> None:
    check(ROOT / page, target)
