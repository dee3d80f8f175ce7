"""Every relative link and image in README.md and docs/**/*.md names a file that exists."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)  # fenced code blocks: their text is not a link
CODE = re.compile(r"`[^`\n]*`")  # inline code
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target)
HTML = re.compile(r"""<(?:img|a)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", flags=re.I)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", flags=re.I)  # http:, mailto:, //host, #anchor


def link_targets(markdown: str) -> list[str]:
    """The link and image targets of a markdown text, code blocks and inline code left out."""
    text = CODE.sub("", FENCE.sub("", markdown))
    return [*LINK.findall(text), *HTML.findall(text)]


def broken_links(page: Path) -> list[str]:
    """The relative targets in ``page`` that name no file or folder (anchors and queries ignored)."""
    broken = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if path and not (page.parent / path).exists():
            broken.append(target)
    return broken


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_relative_link_and_image_resolves():
    found = {str(p.relative_to(ROOT)): broken_links(p) for p in pages()}
    assert {page: links for page, links in found.items() if links} == {}
    assert sum(len(link_targets(p.read_text(encoding="utf-8"))) for p in pages()) > 50  # the pages were read


def test_the_check_finds_a_broken_link_and_ignores_code(tmp_path):
    (tmp_path / "there.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text("![a](there.png) ![b](missing.png) [c](there.png#part) [d](gone.md#part)\n"
                    "[web](https://example.org/x) [top](#top) <img src=\"nope.png\">\n"
                    "`[e](code.md)`\n```\n![f](block.png)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["missing.png", "gone.md#part", "nope.png"]
