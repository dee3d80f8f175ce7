"""The notebooks in notebooks/ are stored clean (no outputs, no execution counts) and use the Python API
only: no shell escapes, no subprocess, no argparse, no `genlab` command. `tools/run_notebooks.py`
executes them (CI: `make notebooks`); this test only reads them."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# what a code cell must not hold: the CLI from a shell or a process, argument parsing
FORBIDDEN = [
    (re.compile(r"^\s*[!%]", re.M), "a shell escape or magic (! or %)"),
    (re.compile(r"\bsubprocess\b"), "subprocess"),
    (re.compile(r"\bos\.system\b|\bos\.popen\b"), "os.system / os.popen"),
    (re.compile(r"\bargparse\b"), "argparse"),
    (re.compile(r"\bgenlab\.cli\b|from genlab import cli\b|genlab\.__main__"), "genlab's CLI module"),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def problems(nb) -> list[str]:
    """What keeps a notebook from being stored as it must be: outputs, counts, forbidden code."""
    found = []
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {number} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {number} has an execution count")
        for pattern, what in FORBIDDEN:
            if pattern.search(cell.source):
                found.append(f"cell {number} uses {what}")
    return found


def broken_links(nb, folder: Path) -> list[str]:
    """Relative links of markdown cells whose file does not exist (anchors are not checked)."""
    missing = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for target in LINK.findall(cell.source):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (folder / target.split("#")[0]).exists():
                missing.append(target)
    return missing


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_and_uses_the_api(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert problems(nb) == []
    assert broken_links(nb, path.parent) == []
    assert any("import genlab" in c.source for c in nb.cells if c.cell_type == "code")


def _notebook(source: str, outputs=None, count=None):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs, cell.execution_count = outputs or [], count
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"), cell])


def test_the_check_refuses_outputs_counts_and_the_cli():
    assert problems(_notebook("import genlab")) == []
    printed = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    assert problems(_notebook("import genlab", printed, 3)) == ["cell 2 has outputs", "cell 2 has an execution count"]
    assert problems(_notebook("!genlab train vae")) == ["cell 2 uses a shell escape or magic (! or %)"]
    assert problems(_notebook("import subprocess\nsubprocess.run(['genlab'])")) == ["cell 2 uses subprocess"]
    assert problems(_notebook("import argparse")) == ["cell 2 uses argparse"]
    assert problems(_notebook("from genlab.cli.main import main")) == ["cell 2 uses genlab's CLI module"]


def test_the_link_check_finds_a_missing_file(tmp_path):
    (tmp_path / "there.md").write_text("x")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "[a](there.md#part) [b](missing.md) [c](https://example.org/x) [d](#top)")])
    assert broken_links(nb, tmp_path) == ["missing.md"]


def test_saving_pictures_leaves_the_pyplot_backend_alone(tmp_path):
    """A notebook's inline plots stop showing if a library call switches pyplot to Agg."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        _draw_pictures(tmp_path)
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


def _draw_pictures(tmp_path):
    import torch

    from genlab.compression.rd import plot_rd
    from genlab.pictures.grids import save_latent_scatter, save_points
    from genlab.runs.logs import plot_curves

    (tmp_path / "stats.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    assert plot_curves(tmp_path).stat().st_size > 0
    assert save_points(torch.randn(50, 2), tmp_path / "p.png", real=torch.randn(50, 2)).stat().st_size > 0
    assert save_latent_scatter(torch.randn(50, 3), tmp_path / "z.png", labels=torch.arange(50) % 3).stat().st_size > 0
    curves = {"genlab": [{"bpp": 0.2, "psnr": 28.0}, {"bpp": 0.5, "psnr": 31.0}],
              "jpeg": [{"bpp": 0.3, "psnr": 27.0}, {"bpp": 0.8, "psnr": 31.5}]}
    plot_rd(curves, tmp_path / "rd.png")
    assert (tmp_path / "rd.png").stat().st_size > 0
