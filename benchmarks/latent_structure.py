"""Latent structure: clustering (k-means on pixels, k-means on a VAE's latent means, the GMVAE's own
q(y|x)) on ``mnist5k`` and ``digits``, and semi-supervised classification with 100 / 600 / 1000
labels on ``mnist5k`` (logistic regression on pixels, M1, M2) — one run, one table each.

Clustering: for each data set and seed, a ``vae`` and a ``gmvae`` (genlab defaults unless ``--set``)
train on the train split for ``--cpu-minutes`` of process CPU time each (one thread; the same work
whatever else the machine runs); the weights are best.pt (chosen by the validation ELBO: no labels
choose them). Scored on all images (as the clustering literature scores the whole set) and on the
test split: Hungarian cluster accuracy (one cluster per class: stricter than majority vote), NMI,
ARI, k = 10. Median and worst over seeds.

Semi-supervised (``--semi``, mnist5k): label draw d (a balanced N/10-per-class subset of the train
split, ``genlab.data.labels``) is scored with logistic regression on pixels, M1 = the same classifier
on the latent means of clustering seed d's VAE (trained without labels), and ``m2`` trained with the
N labels for ``--m2-cpu-minutes``; test accuracy of q(y|x) with the last weights. Median [min-max].
``m2-paper`` is M2 without genlab's consistency term (``model.consistency=0``), with the fewest labels.

Full-MNIST literature (70k images; ours has 5,000 or 1,797): k-means on pixels 53.5%, DEC 84.3%
(Xie et al. 2016), VaDE 94.5% (Jiang et al. 2017), GMVAE 82.3-88.5% (Dilokthanakul et al. 2016);
100 labels: M2 88.0%, M1+M2 96.7% (Kingma et al. 2014).

    python benchmarks/latent_structure.py --cpu-minutes 10 --seeds 0 1 2 --semi --jobs 2 \\
        --json benchmarks/results/latent_structure.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from genlab.api.training import make_trainer
from genlab.config import DataInfo, RunConfig, TrainConfig, apply_overrides
from genlab.data import load_data
from genlab.data.labels import labelled_train_indices, with_label_budget
from genlab.evaluation import evaluate
from genlab.evaluation.cluster_metrics import cluster_scores, kmeans, linear_probe
from genlab.models import build_model
from genlab.registry import MODELS
from genlab.runs import load_model, new_run, open_run

LABELS = (100, 600, 1000)
CLUSTERINGS = ("pixel_kmeans", "vae_kmeans", "gmvae_kmeans", "gmvae_qy")


def train_job(job: dict) -> dict:
    """Train one model in a worker process (one thread) -> {"run": folder, "steps", "cpu_seconds"}."""
    torch.set_num_threads(1)
    data = load_data(job["data"])
    sets, name = [*job["sets"]], job["model"].removesuffix("-paper")
    if job.get("labels"):
        sets.append("train.select_metric=last")  # M2: the last weights (its ELBO is not the goal)
    parts = apply_overrides({"model": MODELS.get(name).Config(),
                             "train": TrainConfig(cpu_time=job["cpu_seconds"], seed=job["seed"], sample_every=0,
                                                  threads=1, **MODELS.get(name).train_defaults)}, sets)
    cfg = RunConfig(model=name, model_config=parts["model"], train=parts["train"],
                    data_info=DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes))
    if job.get("labels"):
        data, _ = with_label_budget(data, job["labels"], job["draw"], share=cfg.data.label_share)
    run = new_run(Path(job["root"]), name, data.name)
    run.write_config(cfg)
    t0 = time.process_time()
    result = make_trainer(build_model(cfg), data, run, cfg.train, progress=False).fit()
    return {**job, "run": str(run.path), "steps": result.step, "cpu": time.process_time() - t0}


@torch.no_grad()
def codes(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latent means (N, D) and, for a model with its own clusters, q(y|x) (N, K)."""
    z = torch.cat([model.encode(c) for c in x.split(500)])
    probs = torch.cat([model.cluster_probs(c) for c in x.split(500)]) if hasattr(model, "cluster_probs") else None
    return z, probs


def clustering(parts: dict[str, torch.Tensor], y: torch.Tensor, index: torch.Tensor, seed: int) -> dict:
    """Scores of each feature set restricted to ``index`` (k-means refitted there; q(y|x) as it is)."""
    out = {}
    for key, feats in parts.items():
        pred = feats[index].argmax(1) if key == "gmvae_qy" else kmeans(feats[index], 10, seed)[0]
        out[key] = cluster_scores(y[index], pred)
    return out


def load(run: str):
    model, _ = load_model(open_run(run))
    return model.eval()


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def print_clustering(name: str, per_seed: list[dict], minutes: float) -> None:
    print(f"\n{name}: cluster_acc (Hungarian), median [worst-best] of seeds; nmi / ari medians; "
          f"{minutes:g} CPU min per model")
    print(f"{'method':<14}{'acc, all images':>24}{'nmi':>7}{'ari':>7}{'acc, test split':>24}")
    for key in CLUSTERINGS:
        every = [r["all"][key] for r in per_seed]
        test = [r["test"][key]["cluster_acc"] for r in per_seed]
        print(f"{key:<14}{summary([s['cluster_acc'] for s in every]):>24}"
              f"{statistics.median(s['nmi'] for s in every):>7.3f}{statistics.median(s['ari'] for s in every):>7.3f}"
              f"{summary(test):>24}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-minutes", type=float, default=10.0, help="CPU time per clustering model")
    ap.add_argument("--data", nargs="+", default=["mnist5k", "digits"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds = label draws")
    ap.add_argument("--semi", action="store_true", help="also the semi-supervised table (mnist5k)")
    ap.add_argument("--m2-cpu-minutes", type=float, default=3.0)
    ap.add_argument("--digits-cpu-minutes", type=float, default=3.0, help="CPU time per model on digits")
    ap.add_argument("--labels", type=int, nargs="+", default=list(LABELS))
    ap.add_argument("--vae-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--gmvae-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--m2-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--jobs", type=int, default=1, help="trainings at once (one thread each)")
    ap.add_argument("--runs", default=None, help="keep the run folders here (default: a temporary folder)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets = {"vae": args.vae_set, "gmvae": args.gmvae_set, "m2": args.m2_set}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.runs or tmp)
        root.mkdir(parents=True, exist_ok=True)
        minutes = {d: args.digits_cpu_minutes if d == "digits" else args.cpu_minutes for d in args.data}
        jobs = [{"data": d, "model": m, "seed": s, "cpu_seconds": 60 * minutes[d], "sets": sets[m],
                 "root": str(root)} for d in args.data for s in args.seeds for m in ("vae", "gmvae")]
        if args.semi:
            jobs += [{"data": "mnist5k", "model": "m2", "seed": s, "labels": n, "draw": s, "sets": sets["m2"],
                      "cpu_seconds": 60 * args.m2_cpu_minutes, "root": str(root)}
                     for n in args.labels for s in args.seeds]
            # Kingma et al.'s M2 as published (no consistency term), with the fewest labels
            jobs += [{"data": "mnist5k", "model": "m2-paper", "seed": s, "labels": min(args.labels), "draw": s,
                      "sets": [*sets["m2"], "model.consistency=0"], "cpu_seconds": 60 * args.m2_cpu_minutes,
                      "root": str(root)} for s in args.seeds]
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            done = list(pool.map(train_job, jobs))
        runs = {(j["data"], j["model"], j["seed"], j.get("labels")): j for j in done}
        out: dict = {"args": vars(args), "jobs": done, "clustering": {}, "semi": {}}
        for d in args.data:
            data = load_data(d)
            per_seed = []
            for s in args.seeds:
                z_vae, _ = codes(load(runs[(d, "vae", s, None)]["run"]), data.x)
                z_gm, q_gm = codes(load(runs[(d, "gmvae", s, None)]["run"]), data.x)
                parts = {"pixel_kmeans": data.x.flatten(1), "vae_kmeans": z_vae, "gmvae_kmeans": z_gm,
                         "gmvae_qy": q_gm}
                per_seed.append({"seed": s, "all": clustering(parts, data.y, torch.arange(len(data.x)), s),
                                 "test": clustering(parts, data.y, data.indices("test"), s)})
            out["clustering"][d] = per_seed
            print_clustering(d, per_seed, minutes[d])
        if args.semi:
            out["semi"] = semi_supervised(args, runs)
    out["seconds"] = time.perf_counter() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


def semi_supervised(args, runs: dict) -> dict:
    data = load_data("mnist5k")
    test, pixels = data.indices("test"), data.x.flatten(1)
    acc: dict[str, dict[int, list[float]]] = {m: {n: [] for n in args.labels} for m in ("pixels", "m1", "m2")}
    acc["m2-paper"] = {min(args.labels): []}
    for s in args.seeds:
        z, _ = codes(load(runs[("mnist5k", "vae", s, None)]["run"]), data.x)
        for n in args.labels:
            lab = labelled_train_indices(data, n, s)
            acc["pixels"][n].append(linear_probe(pixels[lab], data.y[lab], pixels[test], data.y[test], seed=s))
            acc["m1"][n].append(linear_probe(z[lab], data.y[lab], z[test], data.y[test], seed=s))
            for m in ("m2", "m2-paper"):
                if n in acc[m]:
                    model = load(runs[("mnist5k", m, s, n)]["run"])
                    acc[m][n].append(evaluate(model, data, split="test", metrics=["accuracy"])["values"]["accuracy"])
    print(f"\nmnist5k semi-supervised: test accuracy (500 images), median [min-max] over label draws "
          f"{args.seeds}; M1 on the clustering VAE, M2 {args.m2_cpu_minutes:g} CPU min")
    print(f"{'method':<10}" + "".join(f"{f'{n} labels':>24}" for n in args.labels))
    for m, row in acc.items():
        print(f"{m:<10}" + "".join(f"{summary(row[n]) if n in row else '-':>24}" for n in args.labels))
    return acc


if __name__ == "__main__":
    main()
