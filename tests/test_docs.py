"""The documentation: every relative link and image in README.md and docs/*.md resolves (anchors
included, by GitHub's heading slugs), the README stays short and links every docs page.

External http(s) links are not fetched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 300

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_REF = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str, blank_code: bool = True) -> list[str]:
    """The lines outside fenced code blocks, inline code blanked out (same length) if asked."""
    lines, fence = [], None
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        lines.append(CODE_SPAN.sub(lambda c: "x" * len(c.group(0)), line) if blank_code else line)
    return lines


def link_targets(text: str) -> list[str]:
    """Every link and image target of a Markdown page (inline, reference and HTML)."""
    targets = []
    for line in prose_lines(text):
        targets += INLINE_LINK.findall(line)
        targets += HTML_REF.findall(line)
        m = REFERENCE_DEF.match(line)
        if m:
            targets.append(m.group(1))
    return targets


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lowercase, punctuation out, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings (a repeated slug gets -1, -2, …)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(text, blank_code=False):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(page: Path) -> list[str]:
    """The targets of `page` that do not resolve: a missing file, or a missing heading anchor."""
    broken = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # external (http, https, mailto): not fetched
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md":
            if anchor.lower() not in anchors(path.read_text(encoding="utf-8")):
                broken.append(f"{target}: no heading '#{anchor}' in {path.name}")
    return broken


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_fits_on_a_screen_or_two() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail into docs/"


def test_the_readme_links_every_docs_page() -> None:
    linked = {
        (ROOT / t.partition("#")[0]).resolve()
        for t in link_targets(README.read_text(encoding="utf-8"))
        if not SCHEME.match(t)
    }
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert missing == [], f"docs pages not linked from README.md: {missing}"


def test_the_docs_pages_show_an_image_each_that_exists() -> None:
    """The README keeps one picture, and every picture under docs/ is shown somewhere."""
    readme = README.read_text(encoding="utf-8")
    assert re.search(r"!\[[^\]]*\]\(docs/[^)]+\.png\)", readme), "the README shows no picture"
    shown = set()
    for page in pages():
        for target in link_targets(page.read_text(encoding="utf-8")):
            shown.add((page.parent / target.partition("#")[0]).resolve())
    unused = [p.name for p in sorted(DOCS.glob("*.png")) if p.resolve() not in shown]
    assert unused == [], f"images in docs/ that no page shows: {unused}"


def test_the_checker_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A: section, with `code`\n")
    (tmp_path / "pic.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "[ok](other.md) [ok](other.md#a-section-with-code) ![ok](pic.png) [ok](#title)\n"
        "[ext](https://example.com/nowhere) `[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
        "[gone](missing.md) ![gone](missing.png) [bad anchor](other.md#nope) [self](#nope)\n"
        '<img src="missing2.png">\n'
        "[ref]: missing3.md\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "missing.png: no such file",
        "other.md#nope: no heading '#nope' in other.md",
        "#nope: no heading '#nope' in page.md",
        "missing2.png: no such file",
        "missing3.md: no such file",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Set-up: two commands", "set-up-two-commands"),
        ("The faders in a browser: `fader serve`", "the-faders-in-a-browser-fader-serve"),
        ("Choosing λ_E", "choosing-λ_e"),
        ("kill -9 anywhere", "kill--9-anywhere"),
    ],
)
def test_slugs_follow_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
