"""Training steps a wall-clock budget buys at 1 thread, at torch's default (one per core) and with genlab's
measured choice (``train.threads`` unset), on a busy machine.

The three runs of one model start together and share the machine (and with ``--busy N``, N processes that
spin on a core each, standing in for other work), so each sees the same load; the table gives steps, the
thread counts the tuner chose, and the run's final metrics (test split, the weights the run keeps). The
machine's CPU (``lscpu``) and load average are printed beside them. ``--one-at-a-time`` runs the variants
one after the other instead, each with the machine to itself (beside the ``--busy`` spinners): what a user
with an idle laptop waits for. ``--seeds`` repeats each variant; the table gives medians and ranges.

    python benchmarks/threads.py                                     # wgan-gp on toy2d:grid25, 60 s, --busy 1
    python benchmarks/threads.py --model gan --data mnist5k --time 120 --busy 0 --one-at-a-time --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from genlab.training.speed import cpu_description

VARIANTS = {"1 thread": ["--set", "train.threads=1"], "2 threads (torch's default here)": ["--set", "train.threads=2"],
            "measured (default)": []}


def spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="wgan-gp")
    p.add_argument("--data", default="toy2d:grid25")
    p.add_argument("--time", type=float, default=60.0, help="wall-clock seconds per run")
    p.add_argument("--busy", type=int, default=1, help="processes spinning on a core each during the runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--one-at-a-time", action="store_true",
                   help="run the variants one after the other, each alone (with --busy's spinners)")
    p.add_argument("--json", default="benchmarks/results/threads.json")
    args = p.parse_args()
    stop = mp.Event()
    spinners = [mp.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for s in spinners:
        s.start()
    root = Path(tempfile.mkdtemp(prefix="genlab-threads-"))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    jobs = [(name, seed) for seed in args.seeds for name in VARIANTS]
    loads, rows = [], {}

    def start(name: str, seed: int):
        runs = root / f"{name.split()[0]}-{seed}"
        cmd = [sys.executable, "-m", "genlab", "-q", "train", args.model, "--data", args.data, "--time",
               f"{args.time}s", "--seed", str(seed), "--runs", str(runs), *VARIANTS[name]]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), runs

    def finish(name: str, seed: int, proc, runs: Path) -> None:
        output = proc.communicate()[0]
        (run,) = runs.iterdir()
        stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
        metrics = json.loads((run / "metrics.json").read_text())["values"]
        used = collections.Counter(r.get("threads") for r in stats if "threads" in r)
        steps = int(re.search(r"finished at step (\d+)", output).group(1))
        rows.setdefault(name, []).append({"seed": seed, "steps": steps, "threads_logged": dict(used),
                                          "metrics": metrics})

    groups = [[job] for job in jobs] if args.one_at_a_time else [
        [(name, seed) for name in VARIANTS] for seed in args.seeds]
    for group in groups:
        procs = [(name, seed, *start(name, seed)) for name, seed in group]
        time.sleep(args.time / 2)
        loads.append(os.getloadavg()[0])
        for name, seed, proc, runs in procs:
            finish(name, seed, proc, runs)
    load = statistics.median(loads)
    stop.set()
    shown_keys = [k for k in ("modes", "hq", "fd", "precision", "recall") if k in rows[next(iter(rows))][0]["metrics"]]
    mode = "one at a time" if args.one_at_a_time else "together"
    print(f"# {' '.join(sys.argv)}\n# CPU: {cpu_description()}; load average mid-run {load:.1f} (median); "
          f"--busy {args.busy}; variants run {mode}; seeds {args.seeds}; medians [min-max] over seeds")
    print(f"{'variant':<34}{'steps':>16}  threads at log lines    " + "".join(f"{k:>24}" for k in shown_keys))

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.4g} [{min(values):.4g}-{max(values):.4g}]" if len(values) > 1 \
            else f"{values[0]:.4g}"

    for name, runs in rows.items():
        used = collections.Counter()
        for r in runs:
            used.update(r["threads_logged"])
        print(f"{name:<34}{spread([r['steps'] for r in runs]):>16}  {str(dict(used)):<24}"
              + "".join(f"{spread([r['metrics'][k] for r in runs]):>24}" for k in shown_keys))
    if len(args.seeds) > 1 and shown_keys:
        print("per seed (steps, " + shown_keys[0] + "): " + "; ".join(
            f"{name}: " + ", ".join(f"{r['steps']} / {r['metrics'][shown_keys[0]]:.1f}" for r in runs)
            for name, runs in rows.items()))
    out = {"command": " ".join(sys.argv), "cpu": cpu_description(), "load_average": load, "busy": args.busy,
           "one_at_a_time": args.one_at_a_time, "seeds": args.seeds, "model": args.model, "data": args.data,
           "seconds": args.time, "runs": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
