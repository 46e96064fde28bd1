"""The documentation holds together: README.md stays short, every page under docs/ is linked from it, and every
relative link in README.md and docs/*.md reaches a file that exists (and, for `#anchor`, a heading of it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmulab.core.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
README_MAX_LINES = 200

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`+[^`\n]*`+")
# [text](target) or [text](target "title"); images ![..](..) too. Text may hold nested [..] (e.g. `[[`).
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Link:
    """One link as written: the page it is on, its line, and its target."""

    page: Path
    line: int
    target: str

    def where(self, root: Path) -> str:
        return f"{self.page.relative_to(root)}:{self.line}: ({self.target})"


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1: links and headings in code are not links."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def links(page: Path) -> list[Link]:
    """Every markdown link of a page, outside code blocks and code spans (a code span's text is never a link);
    a link's text may run over lines, as a wrapped paragraph's does. Its line is the line of its target."""
    lines = dict(prose_lines(page.read_text()))
    count = max(lines, default=0)
    text = "\n".join(CODE_SPAN.sub("x", lines.get(number, "")) for number in range(1, count + 1))
    return [Link(page, text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in LINK.finditer(text)]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, link syntax and punctuation dropped (word
    characters, hyphens and spaces kept), spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading's later anchors get -1, -2, ... as on GitHub."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(page.read_text()):
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken(link: Link, root: Path = PROJECT_ROOT) -> str | None:
    """Why a relative link does not lead anywhere inside the checkout `root`, or None when it does (links with a
    scheme are not checked)."""
    if SCHEME.match(link.target) or link.target.startswith("//"):
        return None
    path, _, anchor = link.target.partition("#")
    target = (link.page.parent / path).resolve() if path else link.page
    if not target.is_relative_to(root):
        return f"{link.where(root)} leads out of the checkout"
    if not target.exists():
        return f"{link.where(root)}: no such file {target.relative_to(root)}"
    if anchor and target.suffix == ".md" and target.is_file() and anchor not in anchors(target):
        return f"{link.where(root)}: {target.relative_to(root)} has no heading with anchor #{anchor}"
    return None


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    problems = [problem for link in links(page) if (problem := broken(link)) is not None]
    assert problems == [], "\n".join(problems)


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move details into docs/ (it must stay under 200)"


def test_readme_links_every_page_of_docs() -> None:
    linked = {
        (README.parent / link.target.partition("#")[0]).resolve()
        for link in links(README)
        if not SCHEME.match(link.target)
    }
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert unlinked == [], f"README.md links none of these pages of docs/: {unlinked}"


# --- the checker itself, on pages written here -------------------------------------------------------------------


def test_the_checker_finds_broken_links_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## The third kernel: `mmu-full`\n\n```\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Paths\n\n"
        "[ok](other.md) [ok](other.md#the-third-kernel-mmu-full) [ok](#paths) [web](https://example.org/x.md)\n"
        "[gone](missing.md) [bad anchor](other.md#not-a-heading) [bad here](#nowhere)\n"
        "`[in code](missing-too.md)` and `[`, `[[` in a table, and [a link\nover two lines](gone-too.md)\n"
        "```\n[in a block](missing-three.md)\n```\n"
    )
    found = links(page)
    assert [link.target for link in found] == [
        "other.md",
        "other.md#the-third-kernel-mmu-full",
        "#paths",
        "https://example.org/x.md",
        "missing.md",
        "other.md#not-a-heading",
        "#nowhere",
        "gone-too.md",
    ]
    assert [link.line for link in found] == [5, 5, 5, 5, 6, 6, 6, 8]
    results = [broken(link, root=tmp_path) for link in found]
    assert results[:4] == [None, None, None, None]
    assert "no such file" in str(results[4])
    assert "no heading with anchor #not-a-heading" in str(results[5])
    assert "no heading with anchor #nowhere" in str(results[6])
    assert "page.md:8: (gone-too.md): no such file gone-too.md" in str(results[7])
    assert anchors(tmp_path / "other.md") == {"other-page", "the-third-kernel-mmu-full"}
    outside = Link(page, 1, "../elsewhere.md")
    assert "leads out of the checkout" in str(broken(outside, root=tmp_path))


def test_slugs_follow_github() -> None:
    assert (
        slug("Checking a machine before a lecture: `mmulab soak`") == "checking-a-machine-before-a-lecture-mmulab-soak"
    )
    assert slug("Debian's kernel source after a point release") == "debians-kernel-source-after-a-point-release"
    assert slug("clone_vm") == "clone_vm"
    assert (
        slug("Independent of your environment, order and timing") == "independent-of-your-environment-order-and-timing"
    )
