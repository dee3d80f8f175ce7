"""The version is written once; the docs' option tables are read from the config declarations."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import genlab

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_the_version_is_single_sourced():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "genlab.__version__"}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = ("import sys, genlab.cli\ntry:\n    genlab.cli.main()\nexcept SystemExit as stop:\n"
            "    print('torch' in sys.modules, stop.code, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True, env=env)
    assert r.stdout.strip() == f"genlab {genlab.__version__}", r.stderr[-2000:]
    assert r.stderr.strip() == "False 0"  # answered without importing torch, exit 0


def test_license_file_matches_the_declared_licence():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_options_marker_becomes_the_config_table():
    from genlab.models.vae import VAEConfig

    page = _hooks().on_page_markdown("before\n<!-- options: vae -->\nafter", None, None, None)
    rows = [line for line in page.splitlines() if line.startswith("| `model.")]
    assert [r.split("`")[1] for r in rows] == [f"model.{f.name}" for f in fields(VAEConfig)]
    assert "| `model.feature_norm` | channel\\|layer | `layer` |" in page  # choices, escaped for the table
    assert "| `model.latent_dim` | int | `20` | width of the latent code z | in [1, 1024] |" in page
    assert page.startswith("before\n") and page.endswith("\nafter") and "<!--" not in page
    with pytest.raises(ValueError, match="no model"):
        _hooks().on_page_markdown("<!-- options: nosuchmodel -->", None, None, None)


def test_the_notebooks_entry_lists_the_executed_notebooks_or_goes():
    hooks = _hooks()
    nav = [{"Home": "index.md"}, {"Notebooks": "notebooks/"}, {"Design": [{"API": "api.md"}]}]
    assert hooks._expand_notebooks(nav, ["notebooks/01-a.ipynb"])[1] == {"Notebooks": ["notebooks/01-a.ipynb"]}
    assert hooks._expand_notebooks(nav, []) == [nav[0], nav[2]]


def test_the_api_reference_documents_every_public_name():
    documented = set(re.findall(r"^::: ([\w.]+)$", (ROOT / "docs" / "api.md").read_text(), flags=re.M))
    for name, (module, attribute) in genlab._EXPORTS.items():
        assert (module if attribute is None else f"{module}.{attribute}") in documented, name
    assert set(genlab._EXPORTS) == set(genlab.__all__) - {"__version__"}
