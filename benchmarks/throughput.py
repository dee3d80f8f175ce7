"""Training speed: genlab's trainer against the plain scripts people copy, at the same nets; where the
FLOPs of genlab's own conv models go; sampling speed and the latency of decoding one z.

1. **A/B** (``throughput_refs.py``): for each case, the reference script and genlab's ``Trainer``
   running exactly its nets, initialisation and hyper-parameters, trained in alternating chunks
   (A B, B A, A B after one untimed warm-up chunk each) in this one process, so both see the same
   machine load. Images per second = real images through D (or the encoder) per second of the
   training loop, per CPU-second of this one-thread process (the work, whatever else the machine
   runs) and per wall-second; ratios genlab / reference of the medians, with the min-max of the
   per-pair ratios. After the
   chunks both sides have trained the same number of steps: FD (genlab's feature net, 2,000 samples
   against 2,000 train images) says whether the speed cost any quality.
2. **FLOPs** of genlab's default conv ``gan`` and ``wgan-gp`` on mnist5k at their default batch: FLOPs of a
   training step, averaged over 4 steps since lazy R1 runs on every 4th (``torch.utils.flop_counter``,
   backward and the penalties' double backward included),
   its time, GFLOP/s against the GEMM ceiling of its precision measured in the same run (one thread),
   and the ops (by shape) that take the most time, with their own GFLOP/s.
3. **Sampling**: images per CPU-second of ``sample(1000)`` and the wall-clock latency of ``decode``
   of one z (median and 95th percentile of 200 calls), untrained default models.

One torch thread; the load of the rest of the machine is recorded with every window (the CPU time
of other processes from /proc/stat, and the load average). A case is one entry of ``CASES``: a
reference loop class, its image size and chunk, and ``throughput_refs.genlab_model``'s branch
(InfoGAN: add a PyTorch-GAN ``infogan.py`` loop and a branch there, then a line here).

    python benchmarks/throughput.py --json benchmarks/results/throughput.json | tee benchmarks/results/throughput.txt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

import genlab.training.trainer
from genlab.config import TrainConfig
from genlab.data import load_data
from genlab.runs import new_run
from genlab.training import Trainer
from throughput_refs import RefDCGAN, RefInfoGAN, RefVAE, RefWGANGP, genlab_model
from vae import other_cpu_seconds  # benchmarks/vae.py


@dataclass(frozen=True)
class Case:
    reference: type
    size: int  # image side the script trains at
    chunk: int  # reference iterations per timed chunk (about 10 s on one quiet thread)
    mlp: bool  # per-step overhead dominates: target 1.5x (conv: 1.1x)
    ref_args: tuple = ()


CASES = {
    "dcgan": Case(RefDCGAN, 32, 10, False),
    "wgan-gp-conv": Case(RefWGANGP, 32, 10, False, (True,)),
    "wgan-gp-mlp": Case(RefWGANGP, 28, 150, True, (False,)),
    "infogan": Case(RefInfoGAN, 32, 10, False),
    "vae-mlp": Case(RefVAE, 28, 400, True),
}


def window(fn) -> dict:
    """Run fn(): its wall-clock and CPU seconds (one thread: CPU time is the work, whatever else the
    machine runs), and the rest of the machine's CPU use meanwhile."""
    other0, t0, cpu0 = other_cpu_seconds(), time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "other_load_cores": round((other_cpu_seconds() - other0) / wall, 3),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


class BenchTrainer(Trainer):
    """genlab's Trainer without what ``fit`` does after its loop (final evaluation, checkpoint, sample
    grid; the curves are patched out below), so a chunk's time is the training loop's."""

    def evaluate(self, bar):
        return {}

    def save(self):
        pass

    def save_sample_grid(self):
        return None


genlab.training.trainer.plot_curves = lambda folder, out=None: None


class GenlabSide:
    def __init__(self, case: str, data, seed: int, root: Path):
        ref = CASES[case].reference
        self.model = genlab_model(case, tuple(data.shape))
        self.n_critic = getattr(self.model.config, "n_critic", 1)
        lr = 1e-3 if case.startswith("vae") else 2e-4
        self.cfg = TrainConfig(batch_size=ref.images_per_iteration, lr=lr, seed=seed, eval_every=0, sample_every=0,
                               checkpoint_every=0, log_every=50, eval_metrics=(), threads=1)
        self.trainer = BenchTrainer(self.model, data, new_run(root, case, data.name), self.cfg, progress=False)

    def train(self, iterations: int) -> None:
        """As many images as ``iterations`` of the reference: steps x n_critic x batch."""
        t = self.trainer
        t.cfg = replace(self.cfg, steps=t.step + iterations // self.n_critic)
        t.fit()

    def sample(self, n, generator):
        self.model.eval()
        x = self.model.sample(n, generator=generator)
        self.model.train()
        return torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", antialias=True,
                                               align_corners=False) if x.shape[-1] != 28 else x


def fd(sampler, features, real) -> float:
    from genlab.evaluation import sample_metrics

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        values, _ = sample_metrics(lambda n: torch.cat([sampler(m, g) for m in [500] * (n // 500)]),
                                   real, features, ["fd"])
    return values["fd"]


def ab_case(name: str, reps: int, seed: int, root: Path, features, real, train_to: int = 0) -> dict:
    c = CASES[name]
    data = load_data("mnist5k", image_size=None if c.size == 28 else c.size)
    x = data.tensors("train")[0]
    ref = c.reference(x, seed, *c.ref_args)
    ours = GenlabSide(name, data, seed, root)
    images = c.chunk * c.reference.images_per_iteration

    sides = {"reference": lambda: ref.train(c.chunk), "genlab": lambda: ours.train(c.chunk)}
    for fn in sides.values():  # warm-up, untimed
        fn()
    rows = []
    for rep in range(reps):
        for side in ("reference", "genlab") if rep % 2 == 0 else ("genlab", "reference"):
            w = window(sides[side])
            rows.append({"rep": rep, "side": side, "img_per_cpu_s": images / w["cpu_s"],
                         "img_per_s": images / w["wall_s"], **w})
            print(f"  {name:<13} rep {rep} {side:<9} {rows[-1]['img_per_cpu_s']:9.1f} img per CPU-s "
                  f"({rows[-1]['img_per_s']:.1f} per wall-s)  other load {w['other_load_cores']:.2f} cores, "
                  f"loadavg {w['loadavg_1m']}", flush=True)
    med = {s: statistics.median(r["img_per_cpu_s"] for r in rows if r["side"] == s) for s in sides}
    wall = {s: statistics.median(r["img_per_s"] for r in rows if r["side"] == s) for s in sides}
    ratios = sorted(g["img_per_cpu_s"] / r["img_per_cpu_s"] for g, r in zip(
        [r for r in rows if r["side"] == "genlab"], [r for r in rows if r["side"] == "reference"], strict=True))
    done = reps + 1
    while done * images < train_to:  # untimed: both sides on to the same number of images, then FD
        for fn in sides.values():
            fn()
        done += 1
    quality = {"fd_reference": fd(ref.sample, features, real), "fd_genlab": fd(ours.sample, features, real),
               "images_each": done * images}
    return {"case": name, "rows": rows, "median_img_per_cpu_s": med, "median_img_per_wall_s": wall,
            "ratio": med["genlab"] / med["reference"], "ratio_wall": wall["genlab"] / wall["reference"],
            "ratio_per_rep": ratios, "target": 1.5 if c.mlp else 1.1, **quality}


# --- FLOPs of genlab's own conv models -------------------------------------------------------------------
def gemm_ceiling(size: int = 1024, reps: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """GEMM GFLOP/s on one thread (best of ``reps``, CPU time): the ceiling a training step is measured against."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        a @ b
        times.append(time.process_time() - t0)
    return 2 * size**3 / min(times) / 1e9


class _NoModuleTracker:
    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


def _conv_backward_flops(op: str, shapes) -> float:
    """The profiler counts no FLOPs for convolution_backward: 2 x the forward's (grad of the input and
    of the weight; a first layer needs no input gradient, so this overstates it). Shapes: grad_out,
    input, weight; a transposed convolution's weight starts with the input's channels."""
    if op != "aten::convolution_backward" or len(shapes) < 3 or len(shapes[2]) != 4:
        return 0.0
    grad_out, inp, w = shapes[0], shapes[1], shapes[2]
    positions = grad_out if w[0] == grad_out[1] else inp  # regular: output positions; transposed: input
    return 2 * 2.0 * math.prod(positions) * w[1] * w[2] * w[3]


def step_flops(model_name: str, seed: int, root: Path, memory_format: str, precision: str = "fp32",
               cycles: int = 8, cycle: int = 4) -> dict:
    """FLOPs and CPU time of the default model's training steps at its default batch for images
    (``train_defaults_by_kind``). A step's work varies with the step (lazy R1 runs on every 4th), so FLOPs
    are counted over ``cycle`` consecutive steps and the time is the median of ``cycles`` such runs."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from genlab.config import DataInfo
    from genlab.registry import MODELS

    data = load_data("mnist5k")
    cls = MODELS.get(model_name)
    model = cls(cls.Config(), DataInfo(shape=tuple(data.shape), kind="image", num_classes=10))
    cfg = TrainConfig(seed=seed, eval_every=0, sample_every=0, checkpoint_every=0, eval_metrics=(), threads=1)
    # the model's defaults for images (its batch), then the layout and precision this row measures
    cfg = replace(cfg, **{**cls.train_defaults_by_kind.get("image", {}), "memory_format": memory_format,
                          "precision": precision})
    t = Trainer(model, data, new_run(root, model_name, "mnist5k"), cfg, progress=False)
    t._batches = iter(t.loader)
    for _ in range(cycle):  # warm-up
        t.train_step()
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracker()  # its backward hooks break autograd.grad (the penalty)
    with counter:
        for _ in range(cycle):
            t.train_step()
    flops = counter.get_total_flops() / cycle
    times = []
    for _ in range(cycles):  # CPU time of one thread: the steps' work, whatever else the machine runs
        t0 = time.process_time()
        for _ in range(cycle):
            t.train_step()
        times.append((time.process_time() - t0) / cycle)
    sec = statistics.median(times)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for _ in range(cycle):
            t.train_step()
    ops = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.self_cpu_time_total <= 0 or e.key.startswith("ProfilerStep"):
            continue
        op_flops = e.flops or _conv_backward_flops(e.key, e.input_shapes) * e.count
        ops.append({"op": e.key, "shapes": str(e.input_shapes)[:90],
                    "ms_per_step": e.self_cpu_time_total / cycle / 1e3,
                    "gflops_per_s": (op_flops / (e.self_cpu_time_total * 1e-6) / 1e9) if op_flops else None})
    ops.sort(key=lambda o: -o["ms_per_step"])
    return {"model": model_name, "memory_format": memory_format, "precision": precision,
            "computed_in": "bf16" if t.autocast == torch.bfloat16 else "fp32",
            "batch": t.loader.batch_size, "gflop_per_step": flops / 1e9,
            "ms_per_step": sec * 1e3, "gflops_per_s": flops / sec / 1e9, "img_per_s": t.loader.batch_size
            * sum(p.repeat for p in t.phases) / sec, "top_ops": ops[:12]}


def sampling(model_name: str) -> dict:
    from genlab.config import DataInfo
    from genlab.registry import MODELS

    cls = MODELS.get(model_name)
    model = cls(cls.Config(), DataInfo(shape=(1, 28, 28), kind="image", num_classes=10)).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.sample(100, generator=g)
        t0 = time.process_time()
        model.sample(1000, generator=g)
        per_s = 1000 / (time.process_time() - t0)  # per CPU-second of one thread
        z = model.prior_sample(1, g)
        lat = []
        for _ in range(200):
            t0 = time.perf_counter()
            model.decode(z)
            lat.append(time.perf_counter() - t0)
    lat.sort()
    return {"model": model_name, "sample_img_per_s": per_s, "decode_one_ms_median": lat[100] * 1e3,
            "decode_one_ms_p95": lat[190] * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-ab", action="store_true")
    ap.add_argument("--only-ab", action="store_true", help="skip the FLOP and sampling sections")
    ap.add_argument("--train-to", type=int, default=0, metavar="IMAGES",
                    help="before scoring FD, train both sides on (untimed) to this many images")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import genlab.evaluation  # noqa: F401
    import genlab.models  # noqa: F401
    from genlab.evaluation import feature_extractor, real_features
    from genlab.registry import MODELS

    data28 = load_data("mnist5k")
    features = feature_extractor(data28)
    real = real_features(features, data28, "train", 2000)
    from genlab.training.speed import cpu_description, fast_bf16

    out: dict = {"threads": 1, "torch": torch.__version__, "cpu": cpu_description(),
                 "loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        out["gemm_gflops_1thread"] = gemm_ceiling()
        print(f"CPU: {out['cpu']}\nfp32 GEMM ceiling (1024^3, one thread): {out['gemm_gflops_1thread']:.1f} GFLOP/s",
              flush=True)
        if fast_bf16(torch.device("cpu")):
            out["gemm_gflops_1thread_bf16"] = gemm_ceiling(dtype=torch.bfloat16)
        out["ab"] = [] if args.skip_ab else [ab_case(c, args.reps, args.seed, Path(tmp), features, real,
                                                     args.train_to) for c in args.cases]
        out["flops"], out["sampling"] = [], []
        if not args.only_ab:
            out["flops"] = [step_flops(m, args.seed, Path(tmp), fmt) for m in ("gan", "wgan-gp")
                            for fmt in ("contiguous", "channels_last")]
            # bf16 autocast (train.precision=bf16): only where the CPU has AMX / AVX512-BF16
            out["flops"] += [step_flops(m, args.seed, Path(tmp), "channels_last", "bf16") for m in ("gan", "wgan-gp")]
            out["sampling"] = [sampling(m) for m in ("gan", "vae", "infogan") if m in MODELS]
    out["loadavg_end"] = os.getloadavg()
    print(report(out))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))


def report(out: dict) -> str:
    lines = ["", "images per CPU-second (one thread), medians of the chunks; ratio genlab / reference "
             "(per chunk pair min-max); wall-clock ratio beside it",
             f"{'case':<14}{'reference':>11}{'genlab':>10}{'ratio':>8} {'[min-max]':<13}{'wall':>6}"
             f"{'target':>8}{'FD ref':>9}{'FD genlab':>10}  (images each)"]
    for r in out["ab"]:
        m, per = r["median_img_per_cpu_s"], r["ratio_per_rep"]
        ok = "met" if r["ratio"] >= r["target"] else "NOT met"
        lines.append(f"{r['case']:<14}{m['reference']:>11.1f}{m['genlab']:>10.1f}{r['ratio']:>7.2f}x "
                     f"[{per[0]:.2f}-{per[-1]:.2f}]  {r['ratio_wall']:>5.2f}x {r['target']:>4.1f}x {ok:<7}"
                     f"{r['fd_reference']:>7.1f}{r['fd_genlab']:>10.1f}  ({r['images_each']})")
    lines.append(f"\nCPU: {out.get('cpu', '?')}")
    lines.append(f"fp32 GEMM ceiling, one thread: {out['gemm_gflops_1thread']:.1f} GFLOP/s")
    if "gemm_gflops_1thread_bf16" in out:
        lines.append(f"bf16 GEMM ceiling, one thread: {out['gemm_gflops_1thread_bf16']:.1f} GFLOP/s")
    for f in out["flops"]:
        computed = f.get("computed_in", f["precision"])
        ceiling = out.get("gemm_gflops_1thread_bf16") if computed == "bf16" else out["gemm_gflops_1thread"]
        asked = f["precision"] + ("" if computed == f["precision"] else f" -> {computed}: no fast bf16")
        lines.append(f"genlab {f['model']} (default conv, batch {f['batch']}, {f['memory_format']}, {asked}): "
                     f"{f['gflop_per_step']:.2f} GFLOP a step "
                     f"in {f['ms_per_step']:.1f} ms = {f['gflops_per_s']:.1f} GFLOP/s "
                     f"({100 * f['gflops_per_s'] / ceiling:.0f}% of the {computed} ceiling), "
                     f"{f['img_per_s']:.0f} img/s through D")
        for o in f["top_ops"][:8]:
            rate = f"{o['gflops_per_s']:.1f} GFLOP/s" if o["gflops_per_s"] else "-"
            lines.append(f"    {o['ms_per_step']:7.2f} ms  {rate:>14}  {o['op']:<34} {o['shapes']}")
    for s in out["sampling"]:
        lines.append(f"sampling {s['model']}: {s['sample_img_per_s']:.0f} img/s (batches of 1000); decode one z: "
                     f"{s['decode_one_ms_median']:.2f} ms median, {s['decode_one_ms_p95']:.2f} ms p95")
    lines.append(f"load average: start {out['loadavg_start'][0]:.2f}, end {out['loadavg_end'][0]:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
