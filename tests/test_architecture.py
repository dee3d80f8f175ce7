"""The layer rule (docs/architecture.md) and what it buys: every module imports on its own, ``import genlab``
and ``genlab --help`` / ``list`` need no torch, no model is probed by attribute name or named outside ``models/``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "genlab"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}

# imports every module in a child forked from a parent that holds the third-party libraries but no genlab
# module: each import starts from a genlab-free sys.modules, at the cost of a fork (not a torch import)
IMPORT_EACH = r"""
import importlib, os, sys
import numpy, scipy.stats, PIL.Image, sklearn.linear_model, matplotlib, tqdm, torch  # third-party only
assert not [m for m in sys.modules if m == "genlab" or m.startswith("genlab.")]
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as err:
            print(f"{name}: {type(err).__name__}: {err}", flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED", " ".join(failed))
"""


def all_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    modules = [m for m in all_modules() if m != "genlab.__main__"]
    assert len(modules) > 80
    r = subprocess.run([sys.executable, "-c", IMPORT_EACH, *modules], env=ENV, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("FAILED"), r.stdout[-3000:]


def test_the_layer_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    r = subprocess.run([str(lint), "--no-cache"], env=ENV, capture_output=True, text=True, timeout=300,
                       cwd=SRC.parent)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "0 broken" in r.stdout


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["train", "--help"]])
def test_help_and_list_import_no_torch(argv):
    code = ("import sys\nfrom genlab.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nimport genlab\nassert genlab.__version__\n")
    r = subprocess.run([sys.executable, "-c", code, *argv], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip()


def test_import_genlab_is_light():
    r = subprocess.run([sys.executable, "-c", "import sys, genlab; print(sorted(m for m in sys.modules "
                        "if m.startswith(('genlab', 'torch'))))"], env=ENV, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "['genlab']", r.stdout + r.stderr


def source_lines(skip: tuple[str, ...]):
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(skip):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield f"{rel}:{number}", line


def test_no_model_is_probed_by_attribute_name_outside_models():
    probe = re.compile(r"\b(hasattr|getattr)\((model|m|self\.model|cls|model_cls|MODELS\.get\([^)]*\))\s*,")
    found = [f"{where}: {line.strip()}" for where, line in source_lines(("genlab/models/",)) if probe.search(line)]
    assert found == []


def test_no_model_name_outside_models_and_the_catalog():
    """Code branches on capabilities, never on a model's name. The tour (an app that trains the lecture's
    models by name, like a script) is the one place that names them."""
    from genlab import catalog

    names = re.compile("[\"'](" + "|".join(map(re.escape, catalog.MODELS)) + ")[\"']")
    skip = ("genlab/models/", "genlab/catalog.py", "genlab/report/tour.py")
    found = [f"{where}: {line.strip()}" for where, line in source_lines(skip) if names.search(line)]
    assert found == []


def test_no_private_name_is_imported_across_modules():
    private = re.compile(r"^\s*from\s+[.\w]+\s+import\s+(.*\b_[a-z]\w*)")
    found = [f"{where}: {line.strip()}" for where, line in source_lines(()) if private.search(line)]
    assert found == []
