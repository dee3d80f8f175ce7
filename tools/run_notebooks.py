"""Execute the notebooks in notebooks/ top to bottom and keep the executed copies for the docs site.

    python tools/run_notebooks.py                 # every notebook, one at a time
    python tools/run_notebooks.py -j 2            # two kernels at once (one per core)
    python tools/run_notebooks.py notebooks/02-gans.ipynb --out /tmp/executed

Each notebook runs in its own kernel (nbclient, the ``python3`` kernel of this interpreter) with the
notebooks folder as working directory and one torch/OpenMP thread, so two kernels fit on two cores. The
executed copy, outputs included, goes to ``docs/notebooks/`` (ignored by git; mkdocs-jupyter shows it).
The first failing cell stops everything with one line naming the notebook, the cell and the error
(exit 1); the others still running are stopped. At the end a table gives each notebook's wall-clock and
CPU seconds; CPU is that of the kernel process (user + system, from ``getrusage(RUSAGE_CHILDREN)`` of
the worker that ran it), so it means the same on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "docs" / "notebooks"
TIMEOUT = 900  # seconds a cell may take before it counts as failed
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def execute_one(path: Path, out: Path) -> dict:
    """Run one notebook in a fresh kernel (in this process's child); write the executed copy to ``out``."""
    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3", allow_errors=False,
                                     extra_arguments=["--IPKernelApp.log_level=ERROR"],
                                     resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as err:
        error = _failed_cell(nb, err)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return {"notebook": path.name, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "error": error}


def _failed_cell(nb, err: Exception) -> str:
    """'cell N: ErrorName: message' for the first code cell whose outputs hold an error."""
    for number, cell in enumerate(nb.cells, 1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {number}: {output['ename']}: {output['evalue']}".splitlines()[0]
    return str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__


def _worker(path: Path, out: Path) -> subprocess.Popen:
    """A child process, in a process group of its own with its kernel, that runs ``path`` alone, so that its
    CPU count is that notebook's kernel only. Its output goes to files read when it ends."""
    env = {**os.environ, **ONE_THREAD}
    logs = [tempfile.TemporaryFile("w+") for _ in range(2)]
    proc = subprocess.Popen([sys.executable, __file__, "--one", str(path), "--out", str(out)], env=env,
                            stdout=logs[0], stderr=logs[1], text=True, start_new_session=True)
    proc.logs = logs  # type: ignore[attr-defined]
    return proc


def _result(proc: subprocess.Popen, path: Path) -> dict:
    proc.wait()
    stdout, stderr = proc.logs  # type: ignore[attr-defined]
    stdout.seek(0), stderr.seek(0)
    text, errors = stdout.read(), stderr.read()
    try:
        return json.loads(text.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        sys.stderr.write(errors)
        last = errors.strip().splitlines()[-1] if errors.strip() else "no message"
        return {"notebook": path.name, "wall": float("nan"), "cpu": float("nan"),
                "error": f"its worker exited with code {proc.returncode}: {last}"}


def _stop(proc: subprocess.Popen) -> None:
    """End a worker this script started and its kernel (their own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait()


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def run_all(paths: list[Path], out_dir: Path, jobs: int) -> int:
    running: dict[Path, subprocess.Popen] = {}
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _run_all(paths, out_dir, jobs, running)
    except KeyboardInterrupt:
        for proc in running.values():
            _stop(proc)
        print("run_notebooks: interrupted", file=sys.stderr)
        return 130


def _run_all(paths: list[Path], out_dir: Path, jobs: int, running: dict) -> int:
    waiting, done, start = list(paths), [], time.perf_counter()
    while waiting or running:
        while waiting and len(running) < jobs:
            path = waiting.pop(0)
            print(f"running {path.name}", flush=True)
            running[path] = _worker(path, out_dir / path.name)
        finished = next((p for p, proc in running.items() if proc.poll() is not None), None)
        if finished is None:
            time.sleep(0.2)
            continue
        result = _result(running.pop(finished), finished)
        done.append(result)
        if result["error"]:
            for proc in running.values():
                _stop(proc)
            print(f"run_notebooks: {result['notebook']} failed at {result['error']} "
                  f"(executed copy: {out_dir / result['notebook']})", file=sys.stderr)
            return 1
        print(f"done    {result['notebook']}: {result['wall']:.1f} s wall, {result['cpu']:.1f} s CPU", flush=True)
    print(f"\n{'notebook':<36} {'wall s':>8} {'CPU s':>8}")
    for r in sorted(done, key=lambda r: r["notebook"]):
        print(f"{r['notebook']:<36} {r['wall']:>8.1f} {r['cpu']:>8.1f}")
    print(f"{'total':<36} {sum(r['wall'] for r in done):>8.1f} {sum(r['cpu'] for r in done):>8.1f}")
    print(f"elapsed {time.perf_counter() - start:.1f} s with {jobs} at a time; executed copies: {out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="notebooks run at once (default 1)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder of the executed copies (default {OUT})")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # worker mode: one notebook, JSON result
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(execute_one(args.one.resolve(), args.out)), flush=True)
        return 0
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        print(f"run_notebooks: no such notebook: {', '.join(missing) or NOTEBOOKS / '*.ipynb'}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("run_notebooks: --jobs must be at least 1", file=sys.stderr)
        return 2
    return run_all(paths, args.out, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
