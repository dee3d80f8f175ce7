"""torch.compile against eager, per model family: what compiling costs, what a step saves, and after how many
steps it has paid for itself (time to quality is the same curve, shifted by those CPU-seconds: compiling
changes how a step is computed, not what it computes).

    python benchmarks/compile.py [--families gan wgan-gp vae codec] [--repeats 3] \\
        [--json results/compile.json] | tee results/compile.txt

Each (family, mode, repeat) is a fresh worker process with one torch thread and a fresh inductor cache (a
user's first run: nothing compiled before), compiling in-process (``TORCHINDUCTOR_COMPILE_THREADS=1``) so
that the compiler's CPU-seconds are the process's own. It trains the family's defaults on its data for
the steps ``FAMILIES`` gives it, with ``train.compile`` on or off, and reads the CPU-seconds of every step
from the run's ``stats.jsonl`` (``train.log_every=1``). From them:

* ``step_ms``: CPU-milliseconds of a step after the first ``WARM`` steps (their mean: the log's CPU-seconds
  have a 10 ms resolution);
* ``first_s``: CPU-seconds of the first ``WARM`` steps, compiling included;
* ``break_even``: the steps after which the compiled run has used less CPU in all than the eager one,
  ``(first_s(compiled) - first_s(eager)) / (step(eager) - step(compiled))`` (never when a step does not get
  faster). Medians over repeats, with the range of ``step_ms``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# family -> (data, steps trained): enough steps after the warm-up for a steady mean step
FAMILIES = {
    "gan": ("mnist5k", 160),
    "wgan-gp": ("toy2d:ring8", 300),
    "vae": ("mnist5k", 300),
    "codec": ("mnist5k", 300),
}
WARM = 10  # steps counted as start-up: compiling, and a recompile for a second shape or phase


def worker(family: str, compiled: bool) -> dict:
    """One run in this process; the CPU-seconds of each step, from its stats.jsonl."""
    import genlab

    data, steps = FAMILIES[family]
    sets = ["train.threads=1", "train.log_every=1", "train.eval_every=0", "train.sample_every=0",
            "train.checkpoint_every=0", f"train.compile={str(compiled).lower()}"]
    with tempfile.TemporaryDirectory() as runs:
        run = genlab.train(family, data, steps=steps, runs=runs, progress=False, final=False, overrides=sets)
        lines = [json.loads(x) for x in (Path(run.path) / "stats.jsonl").read_text().splitlines()]
    cpu = [x["cpu_time"] for x in lines if "cpu_time" in x]  # cumulative, 10 ms resolution: averaged below
    return {"first_s": cpu[WARM - 1], "step_ms": 1000 * (cpu[-1] - cpu[WARM - 1]) / (len(cpu) - WARM),
            "steps": len(cpu)}


def measure(family: str, compiled: bool) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_COMPILE_THREADS": "1",
               "TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, __file__, "--worker", family, str(int(compiled))], env=env,
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], bool(int(args.worker[1])))))
        return
    import torch

    from genlab.training.speed import cpu_description

    print(f"CPU: {cpu_description()}, torch {torch.__version__}, one thread, load average "
          f"{os.getloadavg()[0]:.2f} at the start")
    print(f"{'family':<9} {'mode':<8} {'first 10 steps CPU-s':>21} {'step CPU-ms (range)':>24} {'x eager':>8} "
          f"{'break-even steps':>17}")
    rows = []
    for family in args.families:
        got = {mode: [measure(family, mode == "compiled") for _ in range(args.repeats)]
               for mode in ("eager", "compiled")}
        med = {m: {k: statistics.median(r[k] for r in got[m]) for k in ("first_s", "step_ms")} for m in got}
        saved_ms = med["eager"]["step_ms"] - med["compiled"]["step_ms"]
        extra_s = med["compiled"]["first_s"] - med["eager"]["first_s"]
        even = round(1000 * extra_s / saved_ms) if saved_ms > 0 else None
        for m in ("eager", "compiled"):
            ms = [r["step_ms"] for r in got[m]]
            speed = med["eager"]["step_ms"] / med[m]["step_ms"]
            print(f"{family:<9} {m:<8} {med[m]['first_s']:>21.2f} "
                  f"{med[m]['step_ms']:>10.2f} ({min(ms):.2f}-{max(ms):.2f}) {speed:>8.2f} "
                  f"{('' if m == 'eager' else (str(even) if even is not None else 'never')):>17}")
            rows.append({"family": family, "mode": m, **med[m], "step_ms_range": [min(ms), max(ms)],
                         "speedup": speed, "break_even_steps": even if m == "compiled" else None,
                         "runs": got[m]})
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "load_average": os.getloadavg()[0]}, indent=1))


if __name__ == "__main__":
    main()
