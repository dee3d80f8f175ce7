"""InfoGAN's codes and the latent tools, measured (issue 4's figures), in one run.

1. InfoGAN on mnist5k, ``--cpu-minutes`` of CPU time per seed (default 15; the trainer's
   ``--cpu-time`` budget: waiting for a core does not count, but the steps a CPU-minute buys depend on
   the CPU, bf16 where it is fast, so the steps reached are printed), one thread,
   default config, seeds ``--seeds``. Per seed: ``code_acc`` / ``code_nmi`` (samples by code,
   labelled by the data set's own classifier, Hungarian matching), ``code_acc_real`` (Q on the
   test split), and L_I (``mi_cat``: mean of the critic phase's last 10 logged values) vs ln 10.
2. The continuous codes of each InfoGAN: for every category and 16 noise vectors, each code is
   swept over [-1, 1] (9 steps, other codes 0); per sweep the Spearman ρ between the code and each
   measured attribute (slant, thickness; ``genlab.latent.attributes``); |ρ| is averaged over sweeps
   per category, then over categories, and the attribute with the larger mean is the code's. "Class
   kept": the share of swept images the classifier labels as the sweep's middle image.
3. Attribute vector on a VAE (default ``vae``, ``--vae-minutes`` of CPU): "thickness" = mean z of
   k thick minus k thin train digits, k/C per class, one from the middle of each of k/C equal bins
   of ranks of the class's thicker (thinner) half (``genlab.latent.references.extremes``; the class
   is balanced out, and ordinary thick digits rather than the most extreme ones give a shorter
   vector with less class in it), for k = 20 (the issue's count, the headline) and 100; added at
   strengths 0.25, 0.5 and 1 to 100 other (test) digits: share whose measured thickness rose, share
   whose predicted class stayed (against the same code decoded without the vector).
4. Projection: a DCGAN (default ``gan``, ``--gan-minutes`` of CPU) inverts 100 test digits
   (8 starts x 300 Adam steps, pixel + feature loss): median PSNR, beside the VAE's median
   reconstruction PSNR of the same digits.

    python benchmarks/infogan.py --json benchmarks/results/infogan.json | tee benchmarks/results/infogan.txt
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

STRENGTHS = (0.25, 0.5, 1.0)  # multiples of the attribute vector added to the codes
ATTRIBUTE_K = (20, 100)  # examples on each side of the thickness vector; the first (the issue's) is the headline
TARGETS = {"code_acc": 0.90, "mi_gap": 0.10, "spearman": 0.8, "class_kept": 0.90, "thickness_rose": 0.90,
           "thickness_class_kept": 0.90}


def train(model: str, seed: int, budget: list[str], runs: Path, extra: list[str]) -> Path:
    """One ``genlab train`` in its own process and runs folder; returns the run folder. ``budget``: the
    trainer's budget options, ``["--cpu-time", "15m"]`` or ``["--steps", "7500"]``."""
    folder = runs / f"{model}-{seed}"
    cmd = [sys.executable, "-m", "genlab", "-q", "train", model, "--data", "mnist5k", *budget,
           "--seed", str(seed), "--runs", str(folder), "--no-final", "--set", "train.threads=1",
           *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    (run,) = folder.iterdir()
    print(f"trained {model} seed {seed} in {time.perf_counter() - t0:.0f} s wall", flush=True)
    return run


def load(run: Path, which: str = "best"):
    from genlab.runs import load_model, open_run

    model, config = load_model(open_run(run), which=which)
    return model.eval(), config


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a, b).statistic
    return 0.0 if np.isnan(r) else float(r)


def infogan_scores(run: Path, data, features, which: str = "best") -> dict:
    """``which``: the weights scored, best.pt (what genlab sample / evaluate load) or the last."""
    from genlab.evaluation import evaluate
    from genlab.latent.attributes import MEASURES
    from genlab.latent.traverse import sweep
    from genlab.runs.logs import read_jsonl

    model, _ = load(run, which)
    values = evaluate(model, data, metrics=["code_acc", "code_nmi", "code_acc_real"], n=2000)["values"]
    logged = read_jsonl(run / "stats.jsonl")
    steps = max((r.get("step", 0) for r in logged), default=0)
    stats = [r for r in logged if "critic/mi_cat" in r]
    mi = statistics.fmean(r["critic/mi_cat"] for r in stats[-10:]) if stats else float("nan")
    layout = model.code_layout
    g = torch.Generator().manual_seed(123)
    sweep_values = torch.linspace(-1, 1, 9)
    codes = []
    for j in range(layout.cont_codes):
        per_measure = {m: [] for m in MEASURES}
        kept = []
        for k in range(layout.categories):
            noise, cat, _ = layout.split(model.prior_sample(16, generator=g).cpu())
            cat[:, 0] = k
            base = layout.compose(noise, cat, torch.zeros(16, layout.cont_codes))
            z = sweep(base, layout.cont_start + j, sweep_values)  # (16, 9, D)
            with torch.no_grad():
                x = model.decode(z.flatten(0, 1)).cpu()  # (144, *shape)
            labels = features.probs(x).argmax(1).view(16, 9)
            kept.append(float((labels == labels[:, 4:5]).double().mean()))
            for name, measure in MEASURES.items():
                m = measure(x).view(16, 9).numpy()
                per_measure[name].append(statistics.fmean(abs(spearman(sweep_values.numpy(), row)) for row in m))
        means = {name: statistics.fmean(v) for name, v in per_measure.items()}
        best = max(means, key=means.get)
        codes.append({"code": j, "attribute": best, "spearman": means[best], "all": means,
                      "class_kept": statistics.fmean(kept)})
    return {"run": str(run), "steps": steps, **values, "mi_cat": mi, "mi_gap": math.log(layout.categories) - mi,
            "codes": codes}


def attribute_scores(vae_run: Path, data, features) -> dict:
    from genlab.latent.attributes import apply_attribute, attribute_vector, thickness
    from genlab.latent.references import extremes

    model, _ = load(vae_run)
    x, _ = data.tensors("test", limit=100, seed=1)
    with torch.no_grad():
        z = model.encode(x)  # (100, D)
        before = model.decode(z)
    label = features.probs(before).argmax(1)
    by_k = {}
    for k in ATTRIBUTE_K:
        with torch.no_grad():
            z_with = model.encode(extremes(data, thickness, split="train", k=k, highest=True))
            z_without = model.encode(extremes(data, thickness, split="train", k=k, highest=False))
            vector = attribute_vector(z_with, z_without)  # (D,)
            moved = apply_attribute(z, vector, torch.tensor(STRENGTHS)).flatten(0, 1)  # (100·S, D)
            images = model.decode(moved).view(100, len(STRENGTHS), *x.shape[1:])
        out = {"vector_norm": float(vector.norm()), "by_strength": {}}
        for i, strength in enumerate(STRENGTHS):
            after = images[:, i]
            out["by_strength"][str(strength)] = {
                "thickness_rose": float((thickness(after) > thickness(before)).double().mean()),
                "class_kept": float((features.probs(after).argmax(1) == label).double().mean()),
                "thickness_after": float(thickness(after).mean())}
        by_k[str(k)] = out
    head = by_k[str(ATTRIBUTE_K[0])]
    return {"k": ATTRIBUTE_K[0], "vector_norm": head["vector_norm"], "mean_code_norm": float(z.norm(dim=1).mean()),
            "thickness_before": float(thickness(before).mean()), "by_strength": head["by_strength"], "by_k": by_k,
            **head["by_strength"]["1.0"]}


def projection_scores(gan_run: Path, vae_run: Path, data, features) -> dict:
    from genlab.evaluation.metrics import psnr
    from genlab.latent.project import project

    gan, _ = load(gan_run)
    vae, _ = load(vae_run)
    x, _ = data.tensors("test", limit=100, seed=2)
    got = project(gan, x, starts=8, steps=300, feature_net=features.net)
    with torch.no_grad():
        recon = vae.reconstruct(x)
    vae_psnr = [psnr(float(m)) for m in (recon - x).pow(2).flatten(1).mean(1)]
    return {"gan_projection_psnr": float(got["psnr"].median()),
            "vae_reconstruction_psnr": statistics.median(vae_psnr),
            "projection_loss_start": float(got["start_loss"].mean()), "projection_loss_end": float(got["loss"].mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cpu-minutes", type=float, default=15.0, help="InfoGAN CPU minutes per seed")
    p.add_argument("--steps", type=int, default=None,
                   help="InfoGAN steps per seed instead of --cpu-minutes: the same work on any CPU")
    p.add_argument("--vae-minutes", type=float, default=5.0)
    p.add_argument("--gan-minutes", type=float, default=10.0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the InfoGAN runs (genlab train --set), e.g. model.ema=0.999")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--runs", default=None, help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--reuse", action="store_true", help="score runs already in --runs instead of training")
    p.add_argument("--which", choices=("best", "last"), default="best",
                   help="InfoGAN weights to score: best.pt as genlab sample and evaluate load them (the "
                        "last weights when the run kept no best.pt, InfoGAN's default), or the last; the "
                        "VAE and DCGAN always best.pt")
    p.add_argument("--codes-only", action="store_true",
                   help="InfoGAN's codes only (sections 1-2): no VAE, no DCGAN, for comparing InfoGAN configs")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(2)
    import genlab.evaluation  # noqa: F401
    import genlab.models  # noqa: F401
    from genlab.data import load_data
    from genlab.evaluation import feature_extractor

    runs = Path(args.runs or tempfile.mkdtemp(prefix="genlab-infogan-"))
    runs.mkdir(parents=True, exist_ok=True)
    overrides = [a for kv in args.set for a in ("--set", kv)]
    infogan_budget = ["--steps", str(args.steps)] if args.steps else ["--cpu-time", f"{args.cpu_minutes}m"]
    jobs = [("infogan", s, infogan_budget, overrides) for s in args.seeds]
    if not args.codes_only:
        jobs += [("vae", 0, ["--cpu-time", f"{args.vae_minutes}m"], []),
                 ("gan", 0, ["--cpu-time", f"{args.gan_minutes}m"], [])]
    t0 = time.perf_counter()
    if args.reuse:
        done = [next((runs / f"{m}-{s}").iterdir()) for m, s, _, _ in jobs]
    else:
        with ThreadPoolExecutor(args.parallel) as pool:
            done = list(pool.map(lambda j: train(j[0], j[1], j[2], runs, j[3]), jobs))
    wall = time.perf_counter() - t0
    data = load_data("mnist5k")
    features = feature_extractor(data)
    info_rows = [infogan_scores(r, data, features, args.which) for r in done[:len(args.seeds)]]
    budget_text = f"{args.steps} steps" if args.steps else f"{args.cpu_minutes:g} CPU minutes"
    result = {"seeds": args.seeds, "cpu_minutes": None if args.steps else args.cpu_minutes, "steps": args.steps,
              "checkpoint": args.which, "set": args.set,
              "train_wall_seconds": wall,
              "loadavg_after": list(__import__("os").getloadavg()), "infogan": info_rows, "targets": TARGETS}
    if not args.codes_only:
        vae_run, gan_run = done[len(args.seeds):]
        result["attribute"] = attribute_scores(vae_run, data, features)
        result["projection"] = projection_scores(gan_run, vae_run, data, features)
    accs = sorted(r["code_acc"] for r in info_rows)
    result["summary"] = {"code_acc_median": statistics.median(accs), "code_acc_worst": accs[0],
                         "code_acc_real_median": statistics.median(r["code_acc_real"] for r in info_rows),
                         "mi_gap_median": statistics.median(r["mi_gap"] for r in info_rows)}
    print(f"\nInfoGAN on mnist5k, {budget_text} per seed (trained in {wall:.0f} s wall), "
          f"weights: {'best.pt' if args.which == 'best' else 'the last'}, config: {' '.join(args.set) or 'defaults'}")
    print(f"{'seed':>4} {'steps':>6} {'code_acc':>9} {'code_nmi':>9} {'acc_real':>9} {'L_I':>7} {'ln10-L_I':>9}  "
          f"continuous codes")
    for s, r in zip(args.seeds, info_rows, strict=True):
        codes = "; ".join(f"c{c['code']}: {c['attribute']} |ρ| {c['spearman']:.2f}, class kept {c['class_kept']:.2f}"
                          for c in r["codes"])
        print(f"{s:>4} {r['steps']:>6} {r['code_acc']:>9.3f} {r['code_nmi']:>9.3f} {r['code_acc_real']:>9.3f} "
              f"{r['mi_cat']:>7.3f} {r['mi_gap']:>9.3f}  {codes}")
    summ = result["summary"]
    print(f"median code_acc {summ['code_acc_median']:.3f} (target >= {TARGETS['code_acc']}), "
          f"worst {summ['code_acc_worst']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.codes_only:
        return
    a = result["attribute"]
    print(f"VAE thickness vectors (k thick vs k thin train digits, halves of each class; mean |z| "
          f"{a['mean_code_norm']:.2f}); targets at strength 1: thickness rose >= 90%, class kept >= 90%")
    for k, row in a["by_k"].items():
        for strength, r in row["by_strength"].items():
            print(f"  k {k:>3} (|v| {row['vector_norm']:.2f}), strength {strength}: thickness rose for "
                  f"{r['thickness_rose']:.0%}, class kept {r['class_kept']:.0%}, "
                  f"mean ink {a['thickness_before']:.4f} -> {r['thickness_after']:.4f}")
    pr = result["projection"]
    print(f"projection: DCGAN median PSNR {pr['gan_projection_psnr']:.2f} dB "
          f"(loss {pr['projection_loss_start']:.4f} -> {pr['projection_loss_end']:.4f}); "
          f"VAE reconstruction median PSNR {pr['vae_reconstruction_psnr']:.2f} dB")


if __name__ == "__main__":
    main()
