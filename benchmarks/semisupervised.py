"""Semi-supervised classification on mnist5k with 100 / 600 / 1000 labels (Kingma et al. 2014).

Every method sees the same balanced labelled subsets of the 4,000-image train split (N/10 per
class, drawn by ``genlab.data.labels.balanced_subset`` with seeds ``--draws``) and is scored by
test accuracy on the fixed 500-image test split; the table gives the median over draws [min-max].

* pixels: standardised logistic regression on the labelled pixels (the probe of ``genlab probe``).
* M1: the same classifier on the latent means of a VAE trained on all train images, without labels
  (one VAE, ``--m1-minutes``, reused by every draw).
* M2: ``m2`` trained on pixels with the labels budget (``genlab train m2 --labels N``), a run per
  (labels, draw), ``--minutes`` each; accuracy of q(y|x), the weights of the last step.
* M1+M2: ``m2`` trained on the M1 latent means as points (a Gaussian decoder),
  with the same budget, ``--stack-minutes`` each: Kingma et al.'s stacked model, M2 on M1's codes.

For context (full MNIST, 100 labels, 50k unlabelled; ours has 4k): M1+TSVM 88.2%, M2 88.0%,
M1+M2 96.7% (Kingma et al. 2014, Table 1).

    python benchmarks/semisupervised.py --minutes 10 --draws 0 1 2 --json benchmarks/results/semisupervised.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genlab.api.training import make_trainer
from genlab.config import DataConfig, DataInfo, RunConfig, TrainConfig, apply_overrides
from genlab.data import DataSet, load_data
from genlab.data.labels import labelled_train_indices, with_label_budget
from genlab.evaluation import evaluate
from genlab.evaluation.cluster_metrics import linear_probe
from genlab.models import build_model
from genlab.registry import MODELS
from genlab.runs import new_run

LABELS = (100, 600, 1000)
# M2 on M1's codes: points, so a Gaussian decoder; its sigma learned (a fixed 0.1 on codes of scale
# ~1 let the reconstruction term swamp the classifier's: 34% with 100 labels in a 1-minute smoke run)
STACK = ["likelihood=gaussian-learned-sigma"]


def train(name: str, data: DataSet, seconds: float, seed: int, root: Path, sets: list[str], *,
          labels: int | None = None, draw: int = 0, threads: int | None = None,
          share: float | None = DataConfig.label_share):
    """Train a genlab model for ``seconds`` (optionally with a labels budget); the last weights."""
    parts = apply_overrides({"model": MODELS.get(name).Config(),
                             "train": TrainConfig(time=seconds, seed=seed, sample_every=0, eval_every=0,
                                                  checkpoint_every=0, threads=threads)}, sets)
    cfg = RunConfig(model=name, model_config=parts["model"], train=parts["train"],
                    data_info=DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes))
    if labels is not None:
        data, _ = with_label_budget(data, labels, draw, share=share)
    model = build_model(cfg)
    result = make_trainer(model, data, new_run(root, name, data.name), cfg.train, progress=False).fit()
    return model.eval(), result.step


def accuracy(model, data: DataSet) -> float:
    return evaluate(model, data, split="test", metrics=["accuracy"])["values"]["accuracy"]


@torch.no_grad()
def latent_data(vae, data: DataSet) -> DataSet:
    """The VAE's latent means of every item as a points data set with the same labels and splits."""
    z = torch.cat([vae.encode(c) for c in data.x.split(500)])  # (N, D)
    return DataSet(name=f"{data.name}-m1", kind="points", x=z, y=data.y, splits=data.splits,
                   num_classes=data.num_classes, class_names=data.class_names)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training time of each M2 run on pixels")
    ap.add_argument("--m1-minutes", type=float, default=5.0, help="training time of the M1 VAE")
    ap.add_argument("--stack-minutes", type=float, default=3.0, help="training time of each M1+M2 run")
    ap.add_argument("--labels", type=int, nargs="+", default=list(LABELS))
    ap.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2], help="label-draw seeds")
    ap.add_argument("--methods", nargs="+", default=["pixels", "m1", "m2", "m1+m2"])
    ap.add_argument("--seed", type=int, default=0, help="training seed of every model")
    ap.add_argument("--vae-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--m2-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--stack-set", action="append", default=None, metavar="KEY=VALUE",
                    help=f"M1+M2's m2 options (default: {' '.join(STACK)})")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    args.stack_set = STACK if args.stack_set is None else args.stack_set
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data("mnist5k")
    test = data.indices("test")
    pixels = data.x.flatten(1)
    acc: dict[str, dict[int, list[float]]] = {m: {n: [] for n in args.labels} for m in args.methods}
    info: dict = {"args": vars(args), "steps": {}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        z_data = None
        if {"m1", "m1+m2"} & set(args.methods):
            vae, steps = train("vae", data, 60 * args.m1_minutes, args.seed, root, args.vae_set,
                               threads=args.threads)
            z_data, info["steps"]["m1_vae"] = latent_data(vae, data), steps
        for n in args.labels:
            for draw in args.draws:
                lab = labelled_train_indices(data, n, draw)
                if "pixels" in acc:
                    acc["pixels"][n].append(linear_probe(pixels[lab], data.y[lab], pixels[test], data.y[test],
                                                         seed=draw))
                if "m1" in acc:
                    acc["m1"][n].append(linear_probe(z_data.x[lab], data.y[lab], z_data.x[test], data.y[test],
                                                     seed=draw))
                if "m2" in acc:
                    m2, steps = train("m2", data, 60 * args.minutes, args.seed, root, args.m2_set, labels=n,
                                      draw=draw, threads=args.threads)
                    acc["m2"][n].append(accuracy(m2, data))
                    info["steps"][f"m2/{n}/{draw}"] = steps
                if "m1+m2" in acc:
                    stack, steps = train("m2", z_data, 60 * args.stack_minutes, args.seed, root, args.stack_set,
                                         labels=n, draw=draw, threads=args.threads)
                    acc["m1+m2"][n].append(accuracy(stack, z_data))
                    info["steps"][f"m1+m2/{n}/{draw}"] = steps
                print(f"{n} labels, draw {draw}: " + ", ".join(f"{m} {acc[m][n][-1]:.3f}" for m in acc), flush=True)
    info["seconds"] = time.perf_counter() - t0
    print(f"\nmnist5k test accuracy (500 images), median [min-max] over label draws {args.draws}; "
          f"M2 {args.minutes} min, M1 VAE {args.m1_minutes} min, M1+M2 {args.stack_minutes} min")
    print(f"{'method':<10}" + "".join(f"{f'{n} labels':>24}" for n in args.labels))
    for m in acc:
        print(f"{m:<10}" + "".join(f"{summary(acc[m][n]):>24}" for n in args.labels))
    if args.json:
        Path(args.json).write_text(json.dumps({"accuracy": acc, **info}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
