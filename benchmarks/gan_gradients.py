"""Vanishing gradients, measured: G's gradient norm as a fresh D is trained against a fixed G.

After Arjovsky & Bottou 2017 ("Towards principled methods for training GANs", Figs. 2 and 3): take
a generator early in training, train a discriminator from scratch against it, and every so often
measure the norm of the gradient of G's loss with respect to G's weights,

    minimax        ||grad_theta E_z log(1 - D(G(z)))||   vanishes as D becomes perfect;
    nonsaturating  ||grad_theta -E_z log D(G(z))||       does not (it grows, and turns noisy);
    wgan-gp        ||grad_theta -E_z D(G(z))||           with a critic trained with the gradient
                                                         penalty instead: stays of order one.

Everything goes through genlab's API: G is a genlab ``gan`` (non-saturating, default config) trained
for ``--g-steps`` by the Trainer; D is a fresh ``gan`` model's critic (its own optimiser phase and
``loss("critic", ...)``), the Wasserstein critic a fresh ``wgan-gp`` model's (with the paper's
penalty weight 10 by default, ``--gp-weight``), both facing the same fixed G. D's accuracy is
measured on held-out real data and as many fresh fakes. The norms are computed on one fixed batch
of ``--n`` latents; G stays in training mode, as during training. Prints a table, writes a PNG
(gradient norm against D's steps and against D's accuracy, log scale) and optionally JSON.

    python benchmarks/gan_gradients.py --data toy2d:ring8 --g-steps 100 1000 --d-steps 5000 \\
        --json benchmarks/results/gan_gradients.json --png benchmarks/results/gan_gradients.png
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import genlab.evaluation  # noqa: F401  (registers the metrics)
import genlab.models  # noqa: F401
from genlab import losses
from genlab.api.training import make_trainer
from genlab.config import DataInfo, RunConfig, TrainConfig
from genlab.data import Loader, load_data
from genlab.models import build_model
from genlab.registry import MODELS
from genlab.runs import new_run

CHECKPOINTS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
CRITICS = {"logistic": ("gan", ("minimax", "nonsaturating")), "wgan-gp": ("wgan-gp", ("wasserstein",))}


def build(name: str, data, seed: int, **fields):
    info = DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes)
    cfg = RunConfig(model=name, model_config=MODELS.get(name).Config(**fields), data_info=info,
                    train=TrainConfig(seed=seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(cfg), cfg


def train_generator(data, steps: int, seed: int, batch_size: int):
    """A genlab ``gan`` (non-saturating) trained ``steps`` steps: the fixed G and its resolved config."""
    model, cfg = build("gan", data, seed, loss="nonsaturating")
    train = TrainConfig(steps=steps, seed=seed, threads=1, batch_size=batch_size, eval_every=0,
                        sample_every=0, checkpoint_every=0, eval_metrics=(), log_every=max(1, steps))
    with tempfile.TemporaryDirectory() as tmp:
        run = new_run(Path(tmp), "gan", data.name)
        run.write_config(replace(cfg, train=train))
        if steps:
            make_trainer(model, data, run, train, progress=False).fit()
    return model.generator, model.config


def grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    return math.sqrt(sum(float(g.pow(2).sum()) for g in grads))


def measure(critic_model, g_losses, generator, z: torch.Tensor, real: torch.Tensor, seed: int) -> dict:
    """G's gradient norm under each loss, D's accuracy and mean outputs on real and fake data."""
    params = [p for p in generator.parameters() if p.requires_grad]
    generator.train()
    d_fake = critic_model.critic(generator(z))  # (N,)
    out = {f"grad_{k}": grad_norm(losses.gan_g_loss(k, d_fake), params) for k in g_losses}
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        fresh = generator(torch.randn(len(real), z.shape[1], generator=g))
        d_real, d_new = critic_model.critic(real), critic_model.critic(fresh)
    out.update(d_real=float(d_real.mean()), d_fake=float(d_new.mean()),
               critic_gap=float(d_real.mean() - d_new.mean()))
    if "wasserstein" not in g_losses:  # a logit has a decision threshold; a critic value has none
        out["d_acc"] = float(torch.cat([d_real > 0, d_new < 0]).float().mean())
    return out


def train_critic(kind: str, generator, g_cfg, data, *, d_steps: int, seed: int, batch_size: int, n: int,
                 gp_weight: float) -> list[dict]:
    """Train a fresh critic of ``kind`` against the fixed ``generator``; measurements at CHECKPOINTS."""
    name, g_losses = CRITICS[kind]
    fields = {"latent_dim": g_cfg.latent_dim, "hidden": g_cfg.hidden, "channels": g_cfg.channels}
    if name == "wgan-gp":
        fields["gp_weight"] = gp_weight
    model, _ = build(name, data, seed + 1, **fields)
    model.generator = generator  # the fixed G: only the critic phase ever steps
    critic_phase = model.phases()[0]
    opt = critic_phase.make_optimizer(2e-4)
    batches = iter(Loader(data, "train", batch_size=batch_size, seed=seed + 2))
    real = data.tensors("val" if "val" in data.splits else "train", limit=n, seed=seed)[0]
    z = torch.randn(n, g_cfg.latent_dim, generator=torch.Generator().manual_seed(seed + 3))
    rows, t0 = [], time.perf_counter()
    torch.manual_seed(seed + 4)
    for step in range(d_steps + 1):
        if step in CHECKPOINTS or step == d_steps:
            model.eval()
            rows.append({"critic": kind, "d_steps": step, **measure(model, g_losses, generator, z, real, seed + 5),
                         "seconds": round(time.perf_counter() - t0, 2)})
            model.train()
        if step == d_steps:
            break
        loss = model.loss("critic", next(batches), step=step)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if critic_phase.after_step is not None:
            critic_phase.after_step()
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'G steps':>7} {'critic':<9} {'D steps':>7} {'D acc':>6} {'|grad| minimax':>15} "
             f"{'|grad| non-sat':>15} {'|grad| W (GP)':>14} {'critic gap':>11}"]

    def f(r, k):
        return f"{r[k]:.3e}" if k in r else "-"

    for r in rows:
        acc = f"{r['d_acc']:.3f}" if "d_acc" in r else "-"
        lines.append(f"{r['g_steps']:>7} {r['critic']:<9} {r['d_steps']:>7} {acc:>6} {f(r, 'grad_minimax'):>15} "
                     f"{f(r, 'grad_nonsaturating'):>15} {f(r, 'grad_wasserstein'):>14} {r['critic_gap']:>11.3f}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"minimax": "tab:red", "nonsaturating": "tab:blue", "wasserstein": "tab:green"}
    ages = sorted({r["g_steps"] for r in rows})
    styles = dict(zip(ages, ["-", "--", ":", "-."] * 4, strict=False))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for age in ages:
        for kind, (_, g_losses) in CRITICS.items():
            rs = [r for r in rows if r["g_steps"] == age and r["critic"] == kind]
            for k in g_losses:
                xs, ys = [r["d_steps"] + 1 for r in rs], [max(r[f"grad_{k}"], 1e-30) for r in rs]
                ax.plot(xs, ys, styles[age], marker="o", ms=3, color=colours[k], label=f"{k}, G at {age} steps")
                if kind == "logistic":
                    bx.plot([r["d_acc"] for r in rs], ys, styles[age], marker="o", ms=3, color=colours[k],
                            label=f"{k}, G at {age} steps")
    ax.set(xscale="log", yscale="log", xlabel="D training steps + 1 (fresh D, G fixed)",
           ylabel="||grad of G's loss wrt G's weights||", title="G's gradient as D improves")
    bx.set(yscale="log", xlabel="D's accuracy (held-out real + fresh fakes)", ylabel="gradient norm",
           title="against D's accuracy (logistic D)")
    for a in (ax, bx):
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="toy2d:ring8", help="toy2d:ring8 (default), mnist5k, ...")
    ap.add_argument("--g-steps", type=int, nargs="+", default=[100, 1000], help="ages of the fixed G (steps)")
    ap.add_argument("--d-steps", type=int, default=5000, help="D training steps against each G")
    ap.add_argument("--critics", nargs="+", default=list(CRITICS), choices=list(CRITICS))
    ap.add_argument("--gp-weight", type=float, default=10.0,
                    help="the Wasserstein critic's penalty (Gulrajani et al.: 10; genlab's toy-2D recipe uses 0.1)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("-n", type=int, default=1024, help="latents for the gradient; real and fake items for D's accuracy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--png", default="gan_gradients.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(args.data)
    rows = []
    for age in args.g_steps:
        generator, g_cfg = train_generator(data, age, args.seed, args.batch_size)
        for kind in args.critics:
            got = train_critic(kind, generator, g_cfg, data, d_steps=args.d_steps, seed=args.seed,
                               batch_size=args.batch_size, n=args.n, gp_weight=args.gp_weight)
            rows += [{"g_steps": age, **r} for r in got]
            print(table([{"g_steps": age, **r} for r in got]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    title = f"{data.name}: fresh D against a fixed genlab gan G (seed {args.seed})"
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    plot(rows, Path(args.png), title)
    print(f"wrote {args.png}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"data": data.name, "seed": args.seed, "g_steps": args.g_steps,
                                               "d_steps": args.d_steps, "batch_size": args.batch_size,
                                               "n": args.n, "gp_weight": args.gp_weight, "rows": rows}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
