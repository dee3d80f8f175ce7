"""Mode coverage of the GAN family on the toy 2-D mixtures, at a fixed CPU budget per run.

For each data set (``toy2d:ring8``, ``toy2d:grid25``), model (``gan`` with the minimax and the
non-saturating loss, ``wgan-gp``; ``--models`` adds ``hinge`` or ``wgan``) and seed, one run trains
through genlab's own Trainer in a temporary run folder for ``--seconds`` of its own CPU time (the
issue's "2 CPU minutes": the same work however busy the machine is) on one CPU thread, with the
model's DEFAULT config (what ``genlab train wgan-gp --data toy2d:grid25`` gives; only the loss is
chosen for ``gan``; ``--set FIELD=VALUE`` overrides model fields, for trials) and the default
TrainConfig, except: no sample grids, no checkpoints and no validation during training (so the
whole budget goes to training), and the final weights are scored. Scores: ``modes`` (modes
holding >= 1% of the samples within 3 sigma) and ``hq`` (share of samples within 3 sigma of a
centre), from 10,000 samples drawn by ``genlab.evaluation.evaluate``;
reported as the median over seeds with the min-max.

Runs go ``--parallel`` at a time (default 2: one per core, each a fresh process with one torch
thread). Each run records its own CPU seconds (so a run that did not get a full core shows a CPU
share below 1), and the whole benchmark records the CPU time of every other process on the
machine from /proc/stat (busy time minus this benchmark's processes), as cores on average.

    python benchmarks/gan.py --seconds 120 --seeds 0 1 2 \\
        --json benchmarks/results/gan_toy2d.json | tee benchmarks/results/gan_toy2d.txt
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DATA = ("toy2d:ring8", "toy2d:grid25")
MODELS = {  # benchmark name -> (genlab model, config fields set on top of its defaults)
    "minimax": ("gan", {"loss": "minimax"}),
    "nonsaturating": ("gan", {"loss": "nonsaturating"}),
    "hinge": ("gan", {"loss": "hinge"}),
    "wgan": ("wgan", {}),
    "wgan-gp": ("wgan-gp", {}),
}
DEFAULT_MODELS = ("minimax", "nonsaturating", "wgan-gp")
TARGETS = {("wgan-gp", "toy2d:grid25"): (25, 0.90), ("wgan-gp", "toy2d:ring8"): (8, 0.95)}  # issue 3


def busy_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def own_cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run_pool(spawn, jobs: list, parallel: int) -> tuple[list[dict], float, float, float]:
    """Run ``spawn(job)`` for every job, ``parallel`` at a time: (rows, wall seconds, CPU seconds per
    second of this benchmark and its workers, of every other process on the machine)."""
    busy0, kids0, me0, t0 = busy_cpu_seconds(), own_cpu_seconds(resource.RUSAGE_CHILDREN), own_cpu_seconds(), \
        time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        rows = list(pool.map(spawn, jobs))
    wall = time.perf_counter() - t0
    ours = own_cpu_seconds(resource.RUSAGE_CHILDREN) - kids0 + own_cpu_seconds() - me0
    other = max(0.0, busy_cpu_seconds() - busy0 - ours) / wall
    return rows, wall, ours, other


def run_one(model_key: str, data_spec: str, seed: int, seconds: float, overrides: list[str], batch: int) -> dict:
    """Train one model for ``seconds`` on one thread and score it; runs inside a worker process."""
    import torch

    import genlab.evaluation  # noqa: F401  (registers the metrics)
    import genlab.models  # noqa: F401
    from genlab.api.training import make_trainer
    from genlab.config import DataInfo, RunConfig, TrainConfig, apply_overrides
    from genlab.data import load_data
    from genlab.evaluation import evaluate
    from genlab.models import build_model
    from genlab.registry import MODELS as REGISTRY
    from genlab.runs import new_run

    torch.set_num_threads(1)
    name, fields = MODELS[model_key]
    data = load_data(data_spec)
    train = TrainConfig(cpu_time=seconds, batch_size=batch, seed=seed, threads=1, eval_every=0, sample_every=0,
                        checkpoint_every=0)
    info = DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes)
    model_config = apply_overrides({"model": REGISTRY.get(name).Config(**fields)}, overrides)["model"]
    cfg = RunConfig(model=name, model_config=model_config, train=train, data_info=info)
    cpu0 = own_cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        run = new_run(Path(tmp), name, data.name)
        run.write_config(cfg)
        trainer = make_trainer(build_model(cfg), data, run, train, progress=False)
        result = trainer.fit()
        train_cpu = own_cpu_seconds() - cpu0
        scored = evaluate(trainer.model, data, split="test", metrics=["modes", "hq"], seed=0)
    resolved = trainer.model.config  # the config after "auto" fields were filled for points
    return {"model": model_key, "data": data_spec, "seed": seed, "steps": result.step,
            "train_seconds": round(result.seconds, 2), "cpu_share": round(train_cpu / max(result.seconds, 1e-9), 3),
            "n_samples": scored["info"].get("n_points"), "batch_size": train.batch_size,
            **scored["values"], "config": {k: v for k, v in vars(resolved).items()}}


def _worker_main(argv: list[str]) -> None:
    model_key, data_spec, seed, seconds, batch = argv[0], argv[1], int(argv[2]), float(argv[3]), int(argv[5])
    print(json.dumps(run_one(model_key, data_spec, seed, seconds, json.loads(argv[4]), batch), default=list),
          flush=True)


def _spawn(job: tuple[str, str, int, float, list[str], int]) -> dict:
    model_key, data_spec, seed, seconds, overrides, batch = job
    out = subprocess.run([sys.executable, __file__, "--worker", model_key, data_spec, str(seed), str(seconds),
                          json.dumps(overrides), str(batch)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"model": model_key, "data": data_spec, "seed": seed, "error": out.stderr.strip()[-2000:]}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{row['data']:<13} {row['model']:<14} seed {row['seed']}  modes {row['modes']:4.0f}  "
          f"hq {row['hq']:.3f}  steps {row['steps']:6d}  cpu share {row['cpu_share']:.2f}", flush=True)
    return row


def summarise(rows: list[dict]) -> dict:
    """{data: {model: {metric: {median, min, max}}}} over the seeds that finished."""
    out: dict = {}
    for r in rows:
        if "error" in r:
            continue
        out.setdefault(r["data"], {}).setdefault(r["model"], []).append(r)
    return {d: {m: {k: {"median": statistics.median(x[k] for x in rs), "min": min(x[k] for x in rs),
                        "max": max(x[k] for x in rs)} for k in ("modes", "hq", "steps")} | {"seeds": len(rs)}
                for m, rs in by_model.items()} for d, by_model in out.items()}


def table(summary: dict, seconds: float) -> str:
    lines = [f"{'data':<13} {'model':<14} {'seeds':>5} {'modes median [min-max]':>24} "
             f"{'hq median [min-max]':>24} {'steps':>7}  target"]
    for d, by_model in summary.items():
        for m, s in by_model.items():
            mo, hq = s["modes"], s["hq"]
            target = TARGETS.get((m, d))
            verdict = ""
            if target:
                ok = mo["median"] >= target[0] and hq["median"] >= target[1]
                verdict = f"{target[0]}/{target[0]} at >= {target[1]:.0%}: {'met' if ok else 'NOT met'}"
            lines.append(f"{d:<13} {m:<14} {s['seeds']:>5} {mo['median']:>8.0f} [{mo['min']:.0f}-{mo['max']:.0f}]"
                         f"{'':>9} {hq['median']:>8.3f} [{hq['min']:.3f}-{hq['max']:.3f}] "
                         f"{s['steps']['median']:>7.0f}  {verdict}")
    lines.append(f"({seconds:.0f} CPU seconds of training per run, one thread each; 10,000 samples per score)")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="training CPU seconds per run (one thread)")
    ap.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                    help="model config overrides as genlab train --set takes them, e.g. ema=0.999 hidden=[192,192]")
    ap.add_argument("--batch-size", type=int, default=128, help="train.batch_size of every run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data", nargs="+", default=list(DATA))
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=list(MODELS))
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time, one process and thread each")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    overrides = list(args.set)
    jobs = [(m, d, s, args.seconds, overrides, args.batch_size)
            for d in args.data for m in args.models for s in args.seeds]
    print(f"{len(jobs)} runs of {args.seconds:.0f} s, {args.parallel} at a time", flush=True)
    rows, wall, ours, other = run_pool(_spawn, jobs, args.parallel)
    for r in rows:
        if "error" in r:
            print(f"FAILED {r['data']} {r['model']} seed {r['seed']}: {r['error']}", file=sys.stderr)
    summary = summarise(rows)
    print()
    print(table(summary, args.seconds))
    print(f"other load on the machine (processes outside this benchmark): {other:.2f} cores on average "
          f"over {wall:.0f} s; this benchmark used {ours / wall:.2f} cores")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "cpu_seconds": args.seconds, "overrides": overrides, "batch_size": args.batch_size, "seeds": args.seeds,
            "parallel": args.parallel, "threads_per_run": 1,
            "wall_seconds": round(wall, 1), "other_load_cores": round(other, 3),
            "benchmark_cores": round(ours / wall, 3), "rows": rows, "summary": summary}, indent=2, default=list))


if __name__ == "__main__":
    main()
