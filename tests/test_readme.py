"""The README's Python example, run exactly as written (in a fresh interpreter, in an empty folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path):
    (example,) = python_blocks()
    check = ("\nassert x.shape == (16, 1, 8, 8) and 0 <= x.min() and x.max() <= 1\n"
             "assert set(scores) == {'elbo', 'nll'} and scores['nll'] > 0\n"
             "assert path.shape == (8, 1, 8, 8)\n"
             "assert (run.path / 'best.pt').is_file() and (run.path / 'metrics.json').is_file()\n"
             "assert len(data) == 5000\n")
    env = {**os.environ, "PYTHONPATH": str(README.parent / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", example + check], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == ""  # the library prints nothing
