"""genlab's default VAE against a plain reference VAE at equal wall-clock, on mnist5k.

The reference is written the way pytorch/examples writes its VAE: MLP 784-400-20, Adam 1e-3,
batch 128, BCE on the grey-level intensities summed per image, a shuffled DataLoader. Both train
on the mnist5k train split for the same time, alternating A/B in this one process, ``--reps``
times. Each is scored by the importance-weighted bound (K=1000) on one fixed binarisation of the
test split (genlab's best-on-validation weights; the reference's final weights, as its script
keeps them), and by training throughput in images/s. The machine's other load during each window
is recorded from /proc/stat so contended windows can be spotted.

    python benchmarks/vae.py --minutes 3 --reps 3 --json benchmarks/results/vae.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genlab.api.training import make_trainer
from genlab.config import DataInfo, RunConfig, TrainConfig
from genlab.data import load_data
from genlab.distributions import Bernoulli, DiagonalGaussian
from genlab.losses import iwae_log_weights_to_bound
from genlab.models import build_model
from genlab.models.vae import VAEConfig
from genlab.runs import load_model, new_run


class ReferenceVAE(nn.Module):
    """pytorch/examples' VAE: 784-400-20-400-784."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.decode_logits(z)), mu, logvar

    @torch.no_grad()
    def iwae_bound(self, x, k, chunk=100):
        x = x.view(-1, 784)
        mu, logvar = self.encode(x)
        log_w = []
        for s in range(0, k, chunk):
            m = min(chunk, k - s)
            q = DiagonalGaussian(mu.repeat(m, 1), logvar.repeat(m, 1))
            z = q.sample()
            lw = (Bernoulli(self.decode_logits(z)).log_prob(x.repeat(m, 1))
                  + DiagonalGaussian.standard(z.shape, z).log_prob(z) - q.log_prob(z))
            log_w.append(lw.view(m, -1))
        return iwae_log_weights_to_bound(torch.cat(log_w))


def other_cpu_seconds() -> float:
    """CPU seconds used by every process on the machine, minus this one (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    me = resource.getrusage(resource.RUSAGE_SELF)
    return busy - me.ru_utime - me.ru_stime


def reference_steps(train_x: torch.Tensor, seed: int):
    """pytorch/examples' VAE training loop, one step per iteration, without end: yields (model, 0) once when
    set up (before any step), then (model, images in the step) after each step."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train_x), batch_size=128, shuffle=True)
    model = ReferenceVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    yield model, 0
    while True:
        for (xb,) in loader:
            recon, mu, logvar = model(xb)
            bce = F.binary_cross_entropy(recon, xb.view(-1, 784), reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            opt.zero_grad()
            (bce + kld).backward()
            opt.step()
            yield model, len(xb)


def train_reference(data, seconds: float, seed: int):
    loop = reference_steps(data.tensors("train")[0], seed)
    next(loop)  # set up: not timed
    seen, start = 0, time.perf_counter()
    for last in loop:
        seen += last[1]
        if time.perf_counter() - start >= seconds:
            break
    return last[0].eval(), seen / (time.perf_counter() - start)


def train_genlab(data, seconds: float, seed: int, root: Path, sets: dict):
    cfg = RunConfig(model="vae", model_config=VAEConfig(**sets),
                    train=TrainConfig(time=seconds, seed=seed, sample_every=0),
                    data_info=DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=10))
    run = new_run(root, "vae", data.name)
    run.write_config(cfg)
    trainer = make_trainer(build_model(cfg), data, run, cfg.train, progress=False)
    start = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - start
    model, _ = load_model(run)
    return model, result.step * trainer.loader.batch_size / wall


def test_nll(model, x_bin, k: int) -> float:
    with torch.no_grad():
        return float(torch.cat([-model.iwae_bound(c, k) for c in x_bin.split(50)]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="genlab VAE config, key=value")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sets = {}
    for s in args.sets:
        key, val = s.split("=", 1)
        sets[key] = tuple(int(v) for v in val.split(",")) if key == "hidden" else type(
            getattr(VAEConfig(), key))(val)
    torch.set_num_threads(2)
    data = load_data("mnist5k")
    x_test, _ = data.tensors("test")
    x_bin = torch.bernoulli(x_test, generator=torch.Generator().manual_seed(0))  # one fixed binarisation
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name in ("reference", "genlab") if rep % 2 == 0 else ("genlab", "reference"):
                other0, t0 = other_cpu_seconds(), time.perf_counter()
                if name == "reference":
                    model, ips = train_reference(data, args.minutes * 60, seed=rep)
                else:
                    model, ips = train_genlab(data, args.minutes * 60, rep, Path(tmp), sets)
                load = (other_cpu_seconds() - other0) / (time.perf_counter() - t0)
                nll = test_nll(model, x_bin, args.k)
                rows.append({"rep": rep, "model": name, "nll": nll, "images_per_s": ips,
                             "other_load_cores": round(load, 3)})
                print(f"rep {rep} {name:<9} nll {nll:7.2f} nats  {ips:8.0f} img/s  other load {load:.2f} cores",
                      flush=True)
    summary = {}
    for name in ("reference", "genlab"):
        mine = [r for r in rows if r["model"] == name]
        summary[name] = {k: {"median": statistics.median(r[k] for r in mine),
                             "min": min(r[k] for r in mine), "max": max(r[k] for r in mine)}
                         for k in ("nll", "images_per_s")}
    ratio = summary["genlab"]["images_per_s"]["median"] / summary["reference"]["images_per_s"]["median"]
    print(f"\n{'model':<10} {f'NLL (K={args.k}), nats':>22} {'images/s':>22}")
    for name, s in summary.items():
        n, t = s["nll"], s["images_per_s"]
        print(f"{name:<10} {n['median']:8.2f} [{n['min']:.2f}-{n['max']:.2f}] "
              f"{t['median']:10.0f} [{t['min']:.0f}-{t['max']:.0f}]")
    print(f"throughput ratio genlab/reference: {ratio:.2f}; NLL difference: "
          f"{summary['genlab']['nll']['median'] - summary['reference']['nll']['median']:+.2f} nats")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"minutes": args.minutes, "k": args.k, "genlab_config": sets,
                                               "rows": rows, "summary": summary,
                                               "throughput_ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
