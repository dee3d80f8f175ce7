"""GANs on mnist5k at a fixed CPU budget: genlab's ``gan`` and ``wgan-gp`` against a plain reference
DCGAN, scored by one evaluator; and the ``cgan`` label check.

Runs (each ``--minutes`` of training wall-clock on one thread, for every seed):

* ``gan`` (non-saturating) and ``wgan-gp``: ``genlab train NAME --data mnist5k --time ...`` through
  the CLI with the model's default config and only ``train.threads=1`` and no periodic evaluation,
  sample grids or checkpoints (so the budget trains); the final weights are scored.
* ``reference``: a DCGAN in the manner of the PyTorch-GAN scripts (eriklindernoren/PyTorch-GAN,
  implementations/dcgan): its architecture (G: linear to 128x8x8, two upsample+conv3x3 stages with
  BatchNorm and LeakyReLU, tanh; D: four stride-2 conv3x3 blocks 16-32-64-128 with LeakyReLU,
  Dropout2d(0.25) and BatchNorm(eps=0.8, as written there) on the middle two, linear + sigmoid),
  N(0, 0.02) conv init, its hyper-parameters (latent 100, batch 64, Adam 2e-4, betas (0.5, 0.999),
  BCE, one G then one D step per batch), images resized to its 32x32 and scaled to [-1, 1], a
  shuffled torch DataLoader and its own loop. Of genlab it uses only the mnist5k train split as a
  tensor and, at the end, the evaluator; its 32x32 samples are resized (bilinear, antialiased) to
  28x28 for it.
* ``cgan``: ``genlab train cgan`` the same way; then 10,000 samples, 1,000 drawn for each label k,
  are classified by the feature network: the share classified as k (target >= 95%).

Scores, the same for every run: ``fd`` is ``genlab.evaluation.evaluate(model, data, split="test",
metrics=["fd"])`` (genlab's feature network, 500 samples against the 500 test images, with the
real-vs-real floor); ``fd_train`` is the FD of 4,000 samples against the 4,000 training images
(less noisy). Throughput is real images through the critic per second of training (steps x
n_critic x batch / seconds). Medians with min-max over seeds; issue 3's targets: genlab's FD below
the reference's for both models, the cgan label accuracy >= 95%.

Runs go ``--parallel`` at a time (default 2), each a fresh process with one torch thread; each
records its CPU share, and the benchmark the CPU time of other processes on the machine.

    python benchmarks/gan_mnist.py --minutes 10 --seeds 0 1 2 \\
        --json benchmarks/results/gan_mnist.json | tee benchmarks/results/gan_mnist.txt
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from gan import own_cpu_seconds, run_pool  # benchmarks/gan.py: the machine-load helpers and worker pool

MODELS = ("reference", "gan", "wgan-gp", "cgan")
BEAT_REFERENCE = ("gan", "wgan-gp")  # issue 3: their FD must be below the reference's
LABEL_SAMPLES = 10_000
TARGET_ACC = 0.95


# --- the reference: a plain DCGAN in the PyTorch-GAN manner ---------------------------------------
class RefGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, img_size: int = 32, channels: int = 1):
        super().__init__()
        self.init_size = img_size // 4
        self.l1 = nn.Linear(latent_dim, 128 * self.init_size**2)
        self.conv = nn.Sequential(
            nn.BatchNorm2d(128),
            nn.Upsample(scale_factor=2), nn.Conv2d(128, 128, 3, 1, 1), nn.BatchNorm2d(128, 0.8), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2), nn.Conv2d(128, 64, 3, 1, 1), nn.BatchNorm2d(64, 0.8), nn.LeakyReLU(0.2),
            nn.Conv2d(64, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z):
        h = self.l1(z).view(len(z), 128, self.init_size, self.init_size)  # (N, 128, 8, 8)
        return self.conv(h)  # (N, C, 32, 32) in [-1, 1]


class RefDiscriminator(nn.Module):
    def __init__(self, img_size: int = 32, channels: int = 1):
        super().__init__()
        layers, c_in = [], channels
        for c_out, bn in ((16, False), (32, True), (64, True), (128, False)):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.LeakyReLU(0.2), nn.Dropout2d(0.25)]
            if bn:
                layers.append(nn.BatchNorm2d(c_out, 0.8))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(128 * (img_size // 16) ** 2, 1), nn.Sigmoid())

    def forward(self, img):
        return self.head(self.body(img).flatten(1))  # (N, 1) probabilities


def ref_init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class RefSampler(nn.Module):
    """The evaluator's view of the reference: ``sample(n)`` -> (n, 1, 28, 28) in [0, 1]."""

    def __init__(self, generator: RefGenerator, latent_dim: int, size: tuple[int, int]):
        super().__init__()
        self.generator, self.latent_dim, self.size = generator, latent_dim, size

    @torch.no_grad()
    def sample(self, n, *, y=None, generator=None):
        img = self.generator(torch.randn(n, self.latent_dim, generator=generator))  # (n, 1, 32, 32)
        img = F.interpolate(img, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        return (img + 1) / 2


REF_LATENT = 100


def reference_steps(train_x: torch.Tensor, seed: int):
    """The reference DCGAN's training loop, one step per iteration, without end. Its nets, init and
    hyper-parameters are the script's. Yields G once when set up (before any step), then (G, g_loss, d_loss,
    images in the step) after each step."""
    batch_size, lr, betas, img_size = 64, 2e-4, (0.5, 0.999), 32
    torch.manual_seed(seed)
    x = F.interpolate(train_x, size=(img_size, img_size), mode="bilinear", align_corners=False) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=batch_size, shuffle=True)
    G, D = RefGenerator(REF_LATENT, img_size), RefDiscriminator(img_size)
    G.apply(ref_init)
    D.apply(ref_init)
    bce = nn.BCELoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    yield G
    while True:
        for (real,) in loader:
            valid, fake = torch.ones(len(real), 1), torch.zeros(len(real), 1)
            opt_g.zero_grad()
            gen = G(torch.randn(len(real), REF_LATENT))
            g_loss = bce(D(gen), valid)
            g_loss.backward()
            opt_g.step()
            opt_d.zero_grad()
            d_loss = (bce(D(real), valid) + bce(D(gen.detach()), fake)) / 2
            d_loss.backward()
            opt_d.step()
            yield G, g_loss, d_loss, len(real)


def train_reference(train_x: torch.Tensor, seconds: float, seed: int) -> tuple[RefSampler, dict]:
    loop = reference_steps(train_x, seed)
    next(loop)  # set up: not timed
    steps = images = 0
    start = time.perf_counter()
    for last in loop:
        steps, images = steps + 1, images + last[3]
        if time.perf_counter() - start >= seconds:
            break
    G, g_loss, d_loss, _ = last
    elapsed = time.perf_counter() - start
    return RefSampler(G, REF_LATENT, tuple(train_x.shape[-2:])), {
        "steps": steps, "train_seconds": round(elapsed, 2), "img_per_s": round(images / elapsed, 1),
        "batch_size": 64, "n_critic": 1, "last_d_loss": float(d_loss), "last_g_loss": float(g_loss)}


# --- genlab runs, through the command line --------------------------------------------------------
def train_genlab(name: str, seconds: float, seed: int, runs: Path):
    from genlab.cli import main as genlab
    from genlab.runs import load_checkpoint, load_model, open_run

    runs = runs / f"{name}-seed{seed}"  # one folder per worker: parallel workers never see each other's runs
    argv = ["-q", "train", name, "--data", "mnist5k", "--time", f"{seconds}s", "--seed", str(seed),
            "--runs", str(runs), "--no-final", "--set", "train.threads=1", "--set", "train.eval_every=0",
            "--set", "train.sample_every=0", "--set", "train.checkpoint_every=0"]
    before = set(runs.iterdir()) if runs.exists() else set()
    if genlab(argv) != 0:
        raise RuntimeError(f"genlab {' '.join(argv)} failed")
    (path,) = set(runs.iterdir()) - before
    run = open_run(path)
    model, config = load_model(run, which="last")
    state = load_checkpoint(run.checkpoint)
    step, elapsed = int(state["step"]), float(state["elapsed"])
    n_critic, batch = model.config.n_critic, config.train.batch_size
    return model, {"steps": step, "train_seconds": round(elapsed, 2), "batch_size": batch, "n_critic": n_critic,
                   "img_per_s": round(step * n_critic * batch / elapsed, 1), "run": str(path)}


# --- the evaluator, the same for every run -------------------------------------------------------
def score(model, data, *, label_check: bool) -> dict:
    from genlab.evaluation import evaluate, feature_extractor, model_sampler, real_features, sample_metrics

    model.eval()
    torch.manual_seed(0)
    result = evaluate(model, data, split="test", metrics=["fd"], seed=0)
    features = feature_extractor(data)
    real = real_features(features, data, "train")
    train_fd, _ = sample_metrics(model_sampler(model, seed=1), real, features, ["fd"])
    out = {"fd": result["values"]["fd"], "fd_floor": result["floor"].get("fd"), "fd_n": result["info"]["n"],
           "fd_train": train_fd["fd"], "fd_train_n": len(real)}
    if label_check:
        k = data.num_classes
        y = torch.arange(k).repeat_interleave(LABEL_SAMPLES // k)  # (10000,)
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():
            x = torch.cat([model.sample(len(b), y=b, generator=g).cpu() for b in y.split(500)]).clamp(0, 1)
        hit = features.probs(x).argmax(1) == y
        out.update(label_acc=float(hit.float().mean()), label_acc_min_class=min(float(hit[y == c].float().mean())
                                                                                 for c in range(k)))
    return out


def run_one(model_key: str, seed: int, seconds: float, runs: str | None) -> dict:
    """Train and score one run; runs inside a worker process with one thread."""
    import genlab.evaluation  # noqa: F401  (registers the metrics)
    from genlab.data import load_data

    torch.set_num_threads(1)
    data = load_data("mnist5k")
    cpu0, wall0 = own_cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(runs or tmp)
        if model_key == "reference":
            model, info = train_reference(data.tensors("train")[0], seconds, seed)
        else:
            model, info = train_genlab(model_key, seconds, seed, folder)
        cpu_share = (own_cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
        scores = score(model, data, label_check=model_key == "cgan")
    return {"model": model_key, "seed": seed, **info, "cpu_share": round(cpu_share, 3), **scores}


def _worker_main(argv: list[str]) -> None:
    runs = argv[3] if len(argv) > 3 else None
    print(json.dumps(run_one(argv[0], int(argv[1]), float(argv[2]), runs)), flush=True)


def _spawn(job: tuple[str, int, float, str | None]) -> dict:
    model_key, seed, seconds, runs = job
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", model_key, str(seed), str(seconds), *([runs] if runs else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        return {"model": model_key, "seed": seed, "error": out.stderr.strip()[-2000:]}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    extra = f"  label acc {row['label_acc']:.3f}" if "label_acc" in row else ""
    print(f"{row['model']:<10} seed {row['seed']}  fd {row['fd']:7.2f}  fd_train {row['fd_train']:7.2f}  "
          f"{row['img_per_s']:7.1f} img/s  steps {row['steps']:6d}  cpu share {row['cpu_share']:.2f}{extra}",
          flush=True)
    return row


# --- summary ----------------------------------------------------------------------------------------
def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(rows: list[dict]) -> dict:
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        if "error" not in r:
            by_model.setdefault(r["model"], []).append(r)
    keys = ("fd", "fd_train", "img_per_s", "steps", "label_acc", "label_acc_min_class")
    out = {m: {k: _stats([r[k] for r in rs]) for k in keys if k in rs[0]} | {"seeds": len(rs)}
           for m, rs in by_model.items()}
    ref = out.get("reference")
    for m, s in out.items():
        if ref and m != "reference":
            s["throughput_ratio"] = s["img_per_s"]["median"] / ref["img_per_s"]["median"]
        if ref and m in BEAT_REFERENCE:
            s["fd_below_reference"] = s["fd"]["median"] < ref["fd"]["median"]
            s["fd_train_below_reference"] = s["fd_train"]["median"] < ref["fd_train"]["median"]
    if "cgan" in out and "label_acc" in out["cgan"]:
        out["cgan"]["label_target_met"] = out["cgan"]["label_acc"]["median"] >= TARGET_ACC
    return out


def table(summary: dict, minutes: float, floor: float | None) -> str:
    def mm(s: dict, fmt: str) -> str:
        return f"{s['median']:{fmt}} [{s['min']:{fmt}}-{s['max']:{fmt}}]"

    lines = [f"{'model':<10} {'seeds':>5} {'FD test (n=500)':>22} {'FD train (n=4000)':>22} "
             f"{'img/s':>22} {'vs ref':>7}  notes"]
    for m, s in summary.items():
        ratio = f"{s['throughput_ratio']:.2f}x" if "throughput_ratio" in s else "-"
        notes = []
        if "fd_below_reference" in s:
            notes.append(f"FD below the reference's: test {'yes' if s['fd_below_reference'] else 'NO'}, "
                         f"train {'yes' if s['fd_train_below_reference'] else 'NO'}")
        if "label_acc" in s:
            notes.append(f"label accuracy {mm(s['label_acc'], '.3f')} (target >= {TARGET_ACC:.0%}: "
                         f"{'met' if s['label_target_met'] else 'NOT met'})")
        lines.append(f"{m:<10} {s['seeds']:>5} {mm(s['fd'], '.2f'):>22} {mm(s['fd_train'], '.2f'):>22} "
                     f"{mm(s['img_per_s'], '.0f'):>22} {ratio:>7}  {'; '.join(notes)}")
    lines.append(f"({minutes:g} min of training per run, one thread each; genlab's feature network; "
                 f"real-vs-real FD floor on test: {floor if floor is None else round(floor, 2)})")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall-clock per run (one thread)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time, one process and thread each")
    ap.add_argument("--runs", default=None, help="keep genlab's run folders here (default: a temporary folder)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--rows-from", nargs="+", default=[], metavar="JSON",
                    help="keep the finished runs of earlier result files and run only the missing (model, seed)")
    args = ap.parse_args()
    import genlab.evaluation  # noqa: F401
    from genlab.data import load_data
    from genlab.evaluation import feature_extractor

    feature_extractor(load_data("mnist5k"))  # trained (or loaded) once here, not by two workers at once
    seconds = args.minutes * 60
    runs = str(Path(args.runs).resolve()) if args.runs else None
    kept = [r for f in args.rows_from for r in json.loads(Path(f).read_text())["rows"] if "error" not in r]
    done = {(r["model"], r["seed"]) for r in kept}
    jobs = [(m, s, seconds, runs) for s in args.seeds for m in args.models if (m, s) not in done]
    print(f"{len(jobs)} runs of {args.minutes:g} min, {args.parallel} at a time", flush=True)
    rows, wall, ours, other = run_pool(_spawn, jobs, args.parallel)
    rows = kept + rows
    for r in rows:
        if "error" in r:
            print(f"FAILED {r['model']} seed {r['seed']}: {r['error']}", file=sys.stderr)
    summary = summarise(rows)
    floor = next((r["fd_floor"] for r in rows if r.get("fd_floor") is not None), None)
    print()
    print(table(summary, args.minutes, floor))
    print(f"other load on the machine (processes outside this benchmark): {other:.2f} cores on average "
          f"over {wall:.0f} s; this benchmark used {ours / wall:.2f} cores")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "minutes": args.minutes, "seeds": args.seeds, "parallel": args.parallel, "threads_per_run": 1,
            "wall_seconds": round(wall, 1), "other_load_cores": round(other, 3),
            "benchmark_cores": round(ours / wall, 3), "fd_floor_test": floor, "rows": rows,
            "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
