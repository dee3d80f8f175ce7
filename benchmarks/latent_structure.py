"""Latent structure on mnist5k: k-means on pixels vs a VAE's latent means vs a GMVAE's own clusters,
and linear probes (M1, Kingma et al. 2014) with 100 / 600 / 1000 balanced labels.

For each seed a VAE and a GMVAE (genlab defaults unless ``--set``) train on the mnist5k train split
for ``--minutes`` each (genlab's trainer; best-on-validation weights). Clustering is scored on all
5,000 images and on the test split by Hungarian cluster accuracy (stricter than majority vote),
NMI and ARI, with k = 10. Published references (full MNIST, not 5k): k-means on pixels ~53%,
AE + k-means ~88%, VaDE 94.5%, GMVAE ~83-88% (DEC Table 2; Jiang 2017; Dilokthanakul 2016).

    python benchmarks/latent_structure.py --minutes 5 --seeds 0 1 2 --json benchmarks/results/latent.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genlab.config import DataInfo, RunConfig, TrainConfig, apply_overrides
from genlab.data import load_data
from genlab.evaluation.clustering import balanced_subset, cluster_scores, kmeans, linear_probe
from genlab.models import build_model
from genlab.registry import MODELS
from genlab.training import Trainer, load_model, new_run

LABELS = (100, 600, 1000)


def train(name: str, data, seconds: float, seed: int, root: Path, sets: list[str]):
    config = apply_overrides({"model": MODELS.get(name).Config()}, sets)["model"]
    cfg = RunConfig(model=name, model_config=config, train=TrainConfig(time=seconds, seed=seed, sample_every=0),
                    data_info=DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=10))
    run = new_run(root, name, data.name)
    run.write_config(cfg)
    result = Trainer(build_model(cfg), data, run, cfg.train, progress=False).fit()
    model, _ = load_model(run)
    return model.eval(), result.step


@torch.no_grad()
def codes(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    z = torch.cat([model.encode(c) for c in x.split(500)])
    probs = torch.cat([model.cluster_probs(c) for c in x.split(500)]) if hasattr(model, "cluster_probs") else None
    return z, probs


def scores_on(parts: dict[str, torch.Tensor], y: torch.Tensor, index: torch.Tensor, seed: int) -> dict:
    """Clustering scores of each feature set restricted to ``index`` (k-means refitted there)."""
    out = {}
    for key, feats in parts.items():
        if key == "gmvae_qy":
            out[key] = cluster_scores(y[index], feats[index].argmax(1))
        else:
            out[key] = cluster_scores(y[index], kmeans(feats[index], 10, seed)[0])
    return out


def probes(feats: torch.Tensor, data, seed: int) -> dict[int, float]:
    tr, te = data.indices("train"), data.indices("test")
    out = {}
    for n in LABELS:
        lab = tr[torch.as_tensor(balanced_subset(data.y[tr].numpy(), n, seed, classes=10))]
        out[n] = linear_probe(feats[lab], data.y[lab], feats[te], data.y[te], seed=seed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="training time per model")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--vae-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--gmvae-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data("mnist5k")
    x, y = data.x, data.y
    everything, test = torch.arange(len(x)), data.indices("test")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            t0 = time.perf_counter()
            vae, vae_steps = train("vae", data, 60 * args.minutes, seed, Path(tmp), args.vae_set)
            gm, gm_steps = train("gmvae", data, 60 * args.minutes, seed, Path(tmp), args.gmvae_set)
            z_vae, _ = codes(vae, x)
            z_gm, q_gm = codes(gm, x)
            parts = {"pixel_kmeans": x.flatten(1), "vae_kmeans": z_vae, "gmvae_kmeans": z_gm, "gmvae_qy": q_gm}
            runs.append({
                "seed": seed, "steps": {"vae": vae_steps, "gmvae": gm_steps},
                "all_5000": scores_on(parts, y, everything, seed), "test": scores_on(parts, y, test, seed),
                "probe": {"pixels": probes(x.flatten(1), data, seed), "vae": probes(z_vae, data, seed),
                          "gmvae": probes(z_gm, data, seed)},
                "seconds": time.perf_counter() - t0})
    print(f"mnist5k, {args.minutes} min per model, seeds {args.seeds}; cluster_acc is Hungarian-matched")
    print(f"{'method':<16}{'acc (all 5k)':>14}{'nmi':>8}{'acc (test)':>12}")
    for key in ("pixel_kmeans", "vae_kmeans", "gmvae_kmeans", "gmvae_qy"):
        acc = statistics.mean(r["all_5000"][key]["cluster_acc"] for r in runs)
        nmi = statistics.mean(r["all_5000"][key]["nmi"] for r in runs)
        acc_t = statistics.mean(r["test"][key]["cluster_acc"] for r in runs)
        print(f"{key:<16}{acc:>14.3f}{nmi:>8.3f}{acc_t:>12.3f}")
    print(f"{'probe (test acc)':<16}" + "".join(f"{f'{n} labels':>12}" for n in LABELS))
    for key in ("pixels", "vae", "gmvae"):
        print(f"{key:<16}" + "".join(f"{statistics.mean(r['probe'][key][n] for r in runs):>12.3f}"
                                     for n in LABELS))
    if args.json:
        Path(args.json).write_text(json.dumps({"minutes": args.minutes, "runs": runs}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
