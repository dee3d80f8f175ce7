"""`genlab report` and a tiny `genlab tour` end to end: the HTML parses, its images decode, its
tables hold finite numbers."""

from __future__ import annotations

import base64
import io
import math
from html.parser import HTMLParser

import pytest
from PIL import Image

from genlab.cli import main


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[bytes] = []
        self.cells: list[str] = []
        self.headings: list[str] = []
        self._cell = self._heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            src = attrs["src"]
            assert src.startswith("data:image/png;base64,"), "images must be embedded"
            self.images.append(base64.b64decode(src.split(",", 1)[1]))
        self._cell = tag == "td"
        self._heading = tag == "h2"

    def handle_endtag(self, tag):
        self._cell = self._heading = False

    def handle_data(self, data):
        if self._cell:
            self.cells.append(data)
        if self._heading:
            self.headings.append(data)


def parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _numbers(cells: list[str]) -> list[float]:
    out = []
    for c in cells:
        try:
            out.append(float(c))
        except ValueError:
            pass
    return out


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    out = tmp_path_factory.mktemp("tour")
    assert main(["-q", "tour", "--tiny", "-o", str(out)]) == 0
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)  # ten tiny trainings with their final evaluations: ~2 CPU minutes
def test_tiny_tour_writes_a_whole_report(tour):
    page = parse(tour / "index.html")
    assert [h.split(".")[0] for h in page.headings[:8]] == [str(i) for i in range(1, 9)]
    assert len(page.images) >= 15
    for data in page.images:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            assert min(img.size) > 8
    numbers = _numbers(page.cells)
    assert len(numbers) >= 30 and all(math.isfinite(v) for v in numbers)


@pytest.mark.timeout(900)
def test_report_of_runs_side_by_side(tour, tmp_path):
    runs = sorted((tour / "runs").iterdir())[:2]
    out = tmp_path / "r.html"
    assert main(["report", *map(str, runs), "-o", str(out)]) == 0
    page = parse(out)
    assert page.headings[0] == "All runs" and len(page.images) >= 4
    assert all(math.isfinite(v) for v in _numbers(page.cells))


def test_report_bad_input_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["tour", "--minutes", "0", "-o", str(tmp_path / "t")]) == 2
