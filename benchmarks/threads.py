"""Training steps a wall-clock budget buys at 1 thread, at torch's default (one per core) and with genlab's
measured choice (``train.threads`` unset), on a busy machine.

The three runs of one model start together and share the machine (and with ``--busy N``, N processes that
spin on a core each, standing in for other work), so each sees the same load; the table gives steps, the
thread counts the tuner chose, and the run's final metrics. The machine's CPU (``lscpu``) and load average
are printed beside them.

    python benchmarks/threads.py                                     # wgan-gp on toy2d:grid25, 60 s, --busy 1
    python benchmarks/threads.py --model gan --data mnist5k --time 120 --busy 0
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import re
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
    p.add_argument("--json", default="benchmarks/results/threads.json")
    args = p.parse_args()
    stop = mp.Event()
    spinners = [mp.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for s in spinners:
        s.start()
    root = Path(tempfile.mkdtemp(prefix="genlab-threads-"))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    procs = {}
    for name, extra in VARIANTS.items():
        runs = root / name.split()[0]
        cmd = [sys.executable, "-m", "genlab", "-q", "train", args.model, "--data", args.data, "--time",
               f"{args.time}s", "--runs", str(runs), *extra]
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
                       runs)
    time.sleep(args.time / 2)
    load = os.getloadavg()[0]
    rows = {}
    for name, (proc, runs) in procs.items():
        output = proc.communicate()[0]
        (run,) = runs.iterdir()
        stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
        metrics = json.loads((run / "metrics.json").read_text())["values"]
        used = collections.Counter(r.get("threads") for r in stats if "threads" in r)
        steps = int(re.search(r"finished at step (\d+)", output).group(1))
        rows[name] = {"steps": steps, "threads_logged": dict(used), "metrics": metrics}
    stop.set()
    head = f"{'variant':<34}{'steps':>8}  threads at log lines   metrics"
    print(f"# {' '.join(sys.argv)}\n# CPU: {cpu_description()}; load average mid-run {load:.1f}; --busy {args.busy}")
    print(head)
    for name, r in rows.items():
        shown = ", ".join(f"{k}: {r['metrics'][k]:.3g}" for k in ("modes", "hq", "fd") if k in r["metrics"])
        print(f"{name:<34}{r['steps']:>8}  {str(r['threads_logged']):<22}{shown}")
    out = {"command": " ".join(sys.argv), "cpu": cpu_description(), "load_average": load, "busy": args.busy,
           "model": args.model, "data": args.data, "seconds": args.time, "runs": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
