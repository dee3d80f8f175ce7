"""The photo codec, end to end: train one variable-rate codec on a photo folder under CPU-time budgets, then
rate–distortion on Kodak against JPEG / WebP / AVIF / PNG and the published Ballé curves, after each budget.

    python benchmarks/compression_photos.py --photos ../shared/data/photos --kodak ../shared/data/kodak \\
        [--runs runs] [--hours 0.25,0.5,1,2] [--stage all|train|rd|trend|bf16]

``train``: ``genlab train codec`` (the ``TRAIN`` settings below) for the first budget, then ``--resume`` of the
same run for each further slice, so the checkpoints after 1/4, 1/2, 1 and 2 CPU-hours are one training run,
each copied to ``RUNS/photo-codec-<h>h`` (weights and config; no data). ``--cpu-time`` counts this process's
CPU time (all its threads); the run uses one torch thread (measured: 1 thread did a 128x128 crop step in
0.050 CPU-s, 2 threads in 0.073 CPU-s, channels-last in 0.058 CPU-s, on the 2-core AMD EPYC here).

``rd``: for each checkpoint, ``genlab.compression.rd_report`` on the Kodak folder (each image at full size,
coded alone, its real file counted) -> ``benchmarks/results/compression_kodak_<h>h.{json,txt}`` and, for the
last, the curves and the matched-bits picture. ``trend`` (also after ``rd``): ``compression_kodak_trend.{json,txt}``
holds BD-rate against JPEG and WebP after each budget, and the whole-file bpp at fixed PSNRs (``FIXED_PSNR``)
beside JPEG's, with the CPU-hours until the codec's rate falls to JPEG's. Encode / decode times of one Kodak
image (medians, 1 and 2 threads, beside Pillow's JPEG and WebP) go to ``compression_kodak_speed.{json,txt}``.

``bf16`` (run on its own, ``--bf16-hours``): fp32 against bf16 autocast, two fresh runs side by side.
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
FIXED_PSNR = (27.0, 28.0, 29.0, 30.0)  # dB, PSNR-RGB: where the codec's bpp is compared after each budget
# the photo ladder: one model for qualities 1..7 (CompressAI's lambdas), 4 stride-2 stages of 64 channels,
# the last one giving M = 96 latent channels (Ballé's layout), a 64-channel hyperprior, trained on 128x128
# random crops, 8 a batch
TRAIN = ["--set", "data.crop=128", "--set", "model.channels=64,64,64,64", "--set", "model.latent_dim=96",
         "--set", "model.last_stage=latent",
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


def _write(name: str, result: dict, lines: list[str]) -> None:
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{name}.txt").write_text("\n".join(lines) + "\n")


def rd_all(snapshots: list[Path], kodak: str) -> None:
    """``rd_report`` of each checkpoint on the Kodak folder (the baselines measured once), each written to
    ``compression_kodak_<h>h.{json,txt,png}``; a checkpoint measured after its weights were saved is not
    measured again."""
    import torch

    from genlab.compression.rd import baseline_curves
    from genlab.compression.report import rd_images, rd_report
    from genlab.runs import open_run

    torch.set_num_threads(1)
    config = open_run(snapshots[0]).read_config()
    _, _, images = rd_images(config, f"folder:{kodak}", None, None, True)
    cached = RESULTS / "compression_kodak_baselines.json"
    if cached.is_file():
        baselines = json.loads(cached.read_text())
    else:
        baselines = baseline_curves(images)
        cached.write_text(json.dumps(baselines, indent=2))
    for snap in snapshots:
        h = json.loads((snap / "source.json").read_text())["cpu_hours"]
        done = RESULTS / f"compression_kodak_{label(h)}.json"
        if done.is_file() and done.stat().st_mtime > (snap / "checkpoint.pt").stat().st_mtime:
            continue  # measured already, on these weights
        start = time.process_time()
        made = rd_report([snap], data=f"folder:{kodak}", output=RESULTS / f"compression_kodak_{label(h)}.png",
                         json_path=done, baselines=baselines)
        (RESULTS / f"compression_kodak_{label(h)}.txt").write_text(
            f"genlab rd {snap} --data folder:{kodak} (rd stage CPU {time.process_time() - start:.0f} s)\n"
            + "\n".join(made.table()) + "\n")


def write_trend(hours: list[float]) -> None:
    """BD-rate and bpp at fixed PSNR after each budget, from the ``compression_kodak_<h>h.json`` the rd stage
    wrote -> ``compression_kodak_trend.{json,txt}``."""
    trend, lines = [], ["BD-rate of the photo codec on the 24 Kodak images after each CPU-time budget "
                        "(one training run)"]
    for h in hours:
        report = json.loads((RESULTS / f"compression_kodak_{label(h)}.json").read_text())
        bd = report["bd_rate_percent"]
        dp = report["bd_psnr_db"]
        trend.append({"cpu_hours": h, "bd_rate_percent": bd, "bd_range_db": report["bd_range_db"], "bd_psnr_db": dp,
                      "points": [{k: p[k] for k in ("quality", "file_bpp", "psnr", "ms_ssim")}
                                 for p in report["curves"]["genlab"]]})
        fmt = lambda v: "n/a" if v is None else f"{v:+.1f}%"  # noqa: E731
        dbf = lambda v: "n/a" if v is None else f"{v:+.2f} dB"  # noqa: E731
        lines.append(f"{label(h):>6} CPU: vs JPEG {fmt(bd['vs_jpeg_file'])}, vs WebP {fmt(bd['vs_webp'])}, "
                     f"vs AVIF {fmt(bd['vs_avif'])}, vs Ballé 2018 {fmt(bd.get('vs_balle2018_hyperprior'))}, "
                     f"vs Ballé 2017 {fmt(bd.get('vs_balle2017_factorized'))}; "
                     f"BD-PSNR vs JPEG {dbf(dp['vs_jpeg_file'])}, "
                     f"vs WebP {dbf(dp['vs_webp'])}, vs Ballé 2018 {dbf(dp.get('vs_balle2018_hyperprior'))}")
    baselines = json.loads((RESULTS / "compression_kodak_baselines.json").read_text())
    fixed = _rate_at_fixed_psnr(trend, baselines["jpeg"])
    lines += fixed.pop("lines")
    _write("compression_kodak_trend", {"trend": trend, **fixed}, lines)


def _rate_at_fixed_psnr(trend: list[dict], jpeg: list[dict]) -> dict:
    """Time to quality of the codec: its whole-file bpp at each of ``FIXED_PSNR`` after each budget, beside
    JPEG's at the same PSNR, and the CPU-hours at which its rate first falls to JPEG's (interpolated linearly
    in CPU-hours between the budgets; None when it does not within them)."""
    from genlab.compression.rd import rate_at

    at = {}
    lines = ["", "Whole-file bpp at a fixed PSNR-RGB on Kodak after each budget (genlab / JPEG at the same PSNR; "
                 "- : the curve does not reach it)",
             f"{'CPU-hours':>9} " + " ".join(f"{f'{db:g} dB':>18}" for db in FIXED_PSNR)]
    for row in trend:
        cells = []
        for db in FIXED_PSNR:
            ours, ref = rate_at(row["points"], db, rate="file_bpp"), rate_at(jpeg, db)
            at.setdefault(str(db), []).append({"cpu_hours": row["cpu_hours"], "genlab_file_bpp": ours,
                                               "jpeg_bpp": ref, "ratio": None if ours is None else ours / ref})
            cells.append(f"{'-' if ours is None else f'{ours:.3f}'} / {ref:.3f}".rjust(18))
        lines.append(f"{row['cpu_hours']:>9g} " + " ".join(cells))
    reach = {}
    for db, rows in at.items():
        first = next((i for i, r in enumerate(rows) if r["ratio"] is not None and r["ratio"] <= 1), None)
        before = rows[first - 1] if first else None
        if first is None:
            reach[db] = None
        elif before is None or before["ratio"] is None:
            reach[db] = rows[first]["cpu_hours"]
        else:
            after = rows[first]
            w = (before["ratio"] - 1) / (before["ratio"] - after["ratio"])
            reach[db] = before["cpu_hours"] + w * (after["cpu_hours"] - before["cpu_hours"])
    lines.append("CPU-hours until genlab's rate falls to JPEG's: " + ", ".join(
        f"{db} dB {'not within the budgets' if h is None else f'{h:.2f}'}" for db, h in reach.items()))
    return {"rate_at_psnr": at, "cpu_hours_to_jpeg_rate": reach, "lines": lines}


def precision_ab(photos: str, kodak: str, runs: Path, hours: float) -> None:
    """bf16 autocast against fp32 on R-D: two fresh runs of the ladder (``TRAIN``, ``train.precision`` fp32 and
    bf16) for ``hours`` CPU-hours each, side by side, then ``rd_report`` of each on Kodak, and BD-rate /
    BD-PSNR of bf16 against fp32 -> ``compression_kodak_bf16_ab.{json,txt}``. On a CPU without fast bf16 the
    trainer falls back to fp32, and both runs compute the same thing."""
    from concurrent.futures import ThreadPoolExecutor

    from genlab.compression import rd
    from genlab.compression.report import rd_report
    from genlab.training.speed import cpu_description

    def trained(precision: str) -> Path:
        folder = runs / f"precision-{precision}-{label(hours)}"
        if not folder.is_dir():
            genlab("train", "codec", "--data", f"folder:{photos}", "--runs", str(folder), "--cpu-time",
                   f"{round(hours * 3600)}s", "--no-final", *TRAIN, "--set", f"train.precision={precision}")
        (run,) = folder.iterdir()
        return run

    with ThreadPoolExecutor(2) as pool:
        made = dict(zip(("fp32", "bf16"), pool.map(trained, ("fp32", "bf16")), strict=True))
    baselines = json.loads((RESULTS / "compression_kodak_baselines.json").read_text())
    result = {"cpu": cpu_description(), "cpu_hours": hours, "runs": {}}
    lines = [f"bf16 autocast against fp32: the photo ladder trained {hours:g} CPU-hours each, side by side; "
             f"R-D on the 24 Kodak images. CPU: {result['cpu']}"]
    for precision, run in made.items():
        report = rd_report([run], data=f"folder:{kodak}", baselines=baselines).to_json()
        stats = (run / "stats.jsonl").read_text().strip().splitlines()
        steps = json.loads(stats[-1]).get("step") if stats else None
        result["runs"][precision] = {"run": str(run), "steps": steps, "points": report["curves"]["genlab_file"],
                                     "bd_rate_vs_jpeg": report["bd_rate_percent"]["vs_jpeg_file"],
                                     "bd_psnr_vs_jpeg": report["bd_psnr_db"]["vs_jpeg_file"]}
        r = result["runs"][precision]
        points = ", ".join(f"{p['bpp']:.3f} @ {p['psnr']:.2f}" for p in r["points"])
        bd_text = "n/a" if r["bd_rate_vs_jpeg"] is None else f"{r['bd_rate_vs_jpeg']:+.1f}%"
        lines.append(f"{precision}: {steps} steps; BD-rate vs JPEG {bd_text}, BD-PSNR vs JPEG "
                     f"{r['bd_psnr_vs_jpeg']:+.2f} dB; bpp @ PSNR: {points}")
    ours, theirs = result["runs"]["bf16"]["points"], result["runs"]["fp32"]["points"]
    result["bf16_vs_fp32"] = {"bd_rate_percent": rd.bd_rate(ours, theirs), "bd_psnr_db": rd.bd_psnr(ours, theirs)}
    ab = result["bf16_vs_fp32"]
    lines.append("bf16 against fp32 at the same CPU-time: BD-rate "
                 + ("n/a" if ab["bd_rate_percent"] is None else f"{ab['bd_rate_percent']:+.1f}%")
                 + ", BD-PSNR " + ("n/a" if ab["bd_psnr_db"] is None else f"{ab['bd_psnr_db']:+.2f} dB"))
    _write("compression_kodak_bf16_ab", result, lines)
    print("\n".join(lines))


def _median_times(fn, repeats: int = 5) -> dict:
    """Medians of wall-clock and CPU seconds over ``repeats`` calls of ``fn``."""
    import numpy as np

    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"wall_s": float(np.median(wall)), "cpu_s": float(np.median(cpu))}


def speed(snapshot: Path, kodak: str, image: str = "kodim01.png") -> None:
    """Encode and decode times of one Kodak image: genlab at each quality and 1 or 2 threads, Pillow JPEG
    (q75) and WebP (q75, method 6); medians of 5 runs, wall-clock and CPU."""
    import io

    import numpy as np
    import torch
    from PIL import Image

    from genlab.compression import compress, decompress
    from genlab.compression.ladder import load_codec
    from genlab.data.user import read_image
    from genlab.training.speed import cpu_description

    model, _ = load_codec(str(snapshot))
    x = torch.from_numpy(read_image(Path(kodak) / image, 3, None))
    rows, result = [], {"image": image, "size": list(x.shape), "cpu": cpu_description(),
                        "load_average": os.getloadavg()[0], "genlab": {}, "pillow": {}}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for q in (model.qualities[0], model.qualities[len(model.qualities) // 2], model.qualities[-1]):
            model.set_quality(q)
            data = compress(model, [x])
            enc = _median_times(lambda: compress(model, [x]))  # noqa: B023
            dec = _median_times(lambda: decompress(model, data))  # noqa: B023
            result["genlab"][f"q{q} threads={threads}"] = {"bytes": len(data), "encode": enc, "decode": dec}
    a = np.asarray(Image.open(Path(kodak) / image).convert("RGB"))
    for fmt, options in (("JPEG", {"quality": 75}), ("WEBP", {"quality": 75, "method": 6})):
        buffer = io.BytesIO()
        Image.fromarray(a).save(buffer, format=fmt, **options)
        blob = buffer.getvalue()
        enc = _median_times(lambda: Image.fromarray(a).save(io.BytesIO(), format=fmt, **options))  # noqa: B023
        dec = _median_times(lambda: np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")))  # noqa: B023
        result["pillow"][f"{fmt} {options}"] = {"bytes": len(blob), "encode": enc, "decode": dec}
    rows.append(f"{image} {x.shape[2]}x{x.shape[1]}, {result['cpu']}, load average {result['load_average']:.1f}; "
                "medians of 5 (wall s / CPU s)")
    for group in ("genlab", "pillow"):
        for k, v in result[group].items():
            rows.append(f"{group + ' ' + k:<46} {v['bytes']:>7} B  encode {v['encode']['wall_s']:.3f} / "
                        f"{v['encode']['cpu_s']:.3f}   decode {v['decode']['wall_s']:.3f} / {v['decode']['cpu_s']:.3f}")
    _write("compression_kodak_speed", result, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="folder of training photos")
    parser.add_argument("--kodak", required=True, help="folder of the evaluation images")
    parser.add_argument("--runs", default="runs", help="where the run and its snapshots go")
    parser.add_argument("--hours", default="0.25,0.5,1,2", help="cumulative CPU-hour budgets")
    parser.add_argument("--stage", default="all", choices=("all", "train", "rd", "trend", "bf16"),
                        help="trend: only the BD-rate / fixed-PSNR table, from the rd stage's results; bf16: "
                             "fp32 against bf16 autocast, two fresh runs of --bf16-hours each (not in all)")
    parser.add_argument("--bf16-hours", type=float, default=0.25, help="CPU-hours of each run of the bf16 stage")
    args = parser.parse_args()
    hours = [float(h) for h in args.hours.split(",")]
    runs = Path(args.runs)
    RESULTS.mkdir(exist_ok=True)
    if args.stage in ("all", "train"):
        train(args.photos, runs, hours)
    if args.stage in ("all", "rd"):
        snapshots = [runs / f"photo-codec-{label(h)}" for h in hours if (runs / f"photo-codec-{label(h)}").is_dir()]
        rd_all(snapshots, args.kodak)
    if args.stage in ("all", "rd", "trend"):
        write_trend(hours)
    if args.stage in ("all", "rd"):
        speed(snapshots[-1], args.kodak)
    if args.stage == "bf16":
        precision_ab(args.photos, args.kodak, runs, args.bf16_hours)


if __name__ == "__main__":
    main()
