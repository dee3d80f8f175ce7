"""The GAN family: adversarial losses by hand, the gradient penalty, phases under the real trainer,
weight clipping, the EMA generator, mode coverage on ring8, conditional sampling, the modes metrics."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

import genlab.evaluation  # noqa: F401  (registers the metrics)
import genlab.models  # noqa: F401
from genlab import losses
from genlab.api.training import make_trainer
from genlab.cli import main
from genlab.config import RunConfig, TrainConfig
from genlab.data import load_data
from genlab.data.base import DataSet
from genlab.data.builtin import toy_centres
from genlab.errors import GenlabError
from genlab.evaluation import evaluate
from genlab.evaluation.modes import high_quality_share, modes_covered
from genlab.models import build_model
from genlab.registry import MODELS
from genlab.runs import new_run

from conftest import blobs, info, points

QUICK = TrainConfig(batch_size=32, eval_every=0, sample_every=0, checkpoint_every=0, log_every=1,
                    eval_metrics=(), threads=1)


def sp(v: float) -> float:
    return math.log1p(math.exp(v))


def trainer(tmp_path, name, data, train=QUICK, **model):
    cls = MODELS.get(name)
    cfg = RunConfig(model=name, model_config=cls.Config(**model), train=train, data_info=info(data))
    run = new_run(tmp_path, name, data.name)
    run.write_config(cfg)
    return make_trainer(build_model(cfg), data, run, cfg.train, progress=False)


# --- losses --------------------------------------------------------------------------------------
D_REAL, D_FAKE = torch.tensor([1.0, -2.0]), torch.tensor([0.5, -1.0])


@pytest.mark.parametrize("kind, smoothing, expected", [
    ("nonsaturating", 0.0, (sp(-1) + sp(2)) / 2 + (sp(0.5) + sp(-1)) / 2),
    ("minimax", 0.0, (sp(-1) + sp(2)) / 2 + (sp(0.5) + sp(-1)) / 2),
    ("nonsaturating", 0.1, (0.9 * (sp(-1) + sp(2)) + 0.1 * (sp(1) + sp(-2))) / 2 + (sp(0.5) + sp(-1)) / 2),
    ("hinge", 0.0, (0 + 3) / 2 + (1.5 + 0) / 2),
    ("wasserstein", 0.0, (0.5 - 1) / 2 - (1 - 2) / 2),
])
def test_d_losses_by_hand(kind, smoothing, expected):
    got = losses.gan_d_loss(kind, D_REAL, D_FAKE, smoothing=smoothing)
    assert got.shape == () and got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind, expected", [
    ("minimax", -(sp(0.5) + sp(-1)) / 2),
    ("nonsaturating", (sp(-0.5) + sp(1)) / 2),
    ("hinge", 0.25),
    ("wasserstein", 0.25),
])
def test_g_losses_by_hand(kind, expected):
    assert losses.gan_g_loss(kind, D_FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_smoothed_d_loss_is_bce_with_soft_targets_and_minimax_saturates():
    bce = nn.functional.binary_cross_entropy_with_logits
    want = bce(D_REAL, torch.full((2,), 0.9)) + bce(D_FAKE, torch.zeros(2))
    assert losses.gan_d_loss("minimax", D_REAL, D_FAKE, smoothing=0.1).item() == pytest.approx(want.item())
    # where D confidently rejects the fakes, minimax's gradient vanishes and the non-saturating one does not
    d = torch.tensor([-8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(losses.gan_g_loss("minimax", d), d)
    (g_ns,) = torch.autograd.grad(losses.gan_g_loss("nonsaturating", d), d)
    assert abs(g_mm.item()) < 1e-3 and g_ns.item() == pytest.approx(-1.0, abs=1e-3)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        losses.gan_d_loss("lsgan", D_REAL, D_FAKE)


# --- gradient penalty ------------------------------------------------------------------------------
def linear_critic(scale: float) -> nn.Linear:
    critic = nn.Linear(16, 1)
    with torch.no_grad():
        w = torch.randn(1, 16, generator=torch.Generator().manual_seed(0))
        critic.weight.copy_(scale * w / w.norm())
    return critic


@pytest.mark.parametrize("scale, expected", [(1.0, 0.0), (3.0, 4.0)])
def test_gradient_penalty_of_linear_critics(scale, expected):
    critic = linear_critic(scale)
    real, fake = torch.rand(8, 1, 4, 4), torch.rand(8, 1, 4, 4)  # images: the norm is over the flattened input
    gp = losses.gradient_penalty(lambda v: critic(v.flatten(1)).squeeze(1), real, fake)
    assert gp.shape == () and gp.item() == pytest.approx(expected, abs=1e-5)
    if scale != 1.0:  # the penalty trains the critic: its graph reaches the weights
        gp.backward()
        assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_gradient_penalty_is_per_example():
    """critic(x) = |x|^2 / 2 has gradient x; with real = fake, x_hat = x whatever eps is."""
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0], [0.6, 0.8]])  # norms 5, 2, 1
    gp = losses.gradient_penalty(lambda v: 0.5 * v.pow(2).sum(1), x, x.clone())
    assert gp.item() == pytest.approx((16 + 1 + 0) / 3, rel=1e-5)


@pytest.mark.parametrize("scale", [0.0, 3.0])
def test_r1_penalty_of_linear_critics_counts_only_the_real_rows(scale):
    """D(x) = w.x has gradient w at every x: R1 = |w|^2 = scale^2. Its input holds reals then fakes (one pass):
    the fakes' rows change nothing."""
    critic = linear_critic(scale)
    seen = torch.rand(16, 1, 4, 4).requires_grad_(True)  # rows 0-7 real, 8-15 fake
    d = critic(seen.flatten(1)).squeeze(1)
    r1 = losses.r1_penalty(d[:8], seen)
    assert r1.shape == () and r1.item() == pytest.approx(scale**2, rel=1e-5, abs=1e-6)
    quadratic = 0.5 * seen.pow(2).flatten(1).sum(1)  # gradient x: R1 is the mean squared norm of the reals
    expected = seen[:8].detach().flatten(1).pow(2).sum(1).mean()
    assert losses.r1_penalty(quadratic[:8], seen).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["gan", "infogan"])
def test_r1_adds_half_gamma_times_the_penalty_to_d_loss_and_trains_d(tmp_path, name):
    """The same step with r1=0 and r1=10: D's loss differs by exactly 5 x the logged penalty, and only D's."""
    data = load_data("digits")
    steps = {}
    for gamma in (0.0, 10.0):
        torch.manual_seed(0)
        t = trainer(tmp_path / str(gamma), name, data, replace(QUICK, steps=1), r1=gamma, r1_every=1,
                    channels=(8, 8))
        t._batches = iter(t.loader)
        torch.manual_seed(1)
        steps[gamma] = t.train_step()
    without, with_r1 = steps[0.0], steps[10.0]
    assert "critic/r1" not in without and with_r1["critic/r1"] > 0
    assert with_r1["critic/loss"] - without["critic/loss"] == pytest.approx(5.0 * with_r1["critic/r1"], rel=1e-4)


def test_lazy_r1_is_taken_every_kth_step_weighted_k_times(tmp_path, monkeypatch):
    """r1_every=3: the penalty is on steps 0 and 3 of 0-4 only, and D's loss there adds 0.5 x gamma x 3 x R1
    (the adversarial term is zeroed here, so D's loss is the penalty term alone)."""
    monkeypatch.setattr(losses, "gan_d_loss", lambda kind, d_real, d_fake, smoothing=0.0: 0.0 * d_real.sum())
    t = trainer(tmp_path, "gan", load_data("digits"), replace(QUICK, steps=5), r1=2.0, r1_every=3, channels=(8, 8))
    real_loss, seen = t.model.loss, {}

    def recording(phase, batch, *, step=0):
        out = real_loss(phase, batch, step=step)
        if phase == "critic":
            seen[step] = {k: v.item() for k, v in out.items()}
        return out

    t.model.loss = recording
    t.fit()
    assert [s for s in sorted(seen) if "r1" in seen[s]] == [0, 3]
    for out in seen.values():
        assert out["loss"] == pytest.approx(0.5 * 2.0 * 3 * out.get("r1", 0.0), rel=1e-5, abs=1e-12)
        assert "r1" not in out or out["r1"] > 0


# --- phases under the real trainer ---------------------------------------------------------------------
@pytest.mark.slow
def test_n_critic_steps_per_generator_step(tmp_path):
    t = trainer(tmp_path, "gan", points(128), replace(QUICK, steps=3), n_critic=4, hidden=(16,), latent_dim=2)
    calls: list[str] = []
    real_loss = t.model.loss

    def counting(phase, batch, *, step=0):
        calls.append(phase)
        return real_loss(phase, batch, step=step)

    t.model.loss = counting
    t.fit()
    assert calls == (["critic"] * 4 + ["generator"]) * 3


@pytest.mark.slow
def test_wgan_clipping_keeps_critic_weights_in_range(tmp_path):
    t = trainer(tmp_path, "wgan", points(128), replace(QUICK, steps=2), hidden=(16,), latent_dim=2)
    assert max(p.abs().max().item() for p in t.model.critic.parameters()) > 0.01  # before: default init
    t.fit()
    assert all(p.abs().max().item() <= 0.01 for p in t.model.critic.parameters())
    assert t.model.phases()[0].optimizer == "rmsprop" and t.model.phases()[0].repeat == 5


def test_wgan_gp_logs_the_penalty_and_the_critic_gap(tmp_path):
    t = trainer(tmp_path, "wgan-gp", points(128), replace(QUICK, steps=1), hidden=(16,), latent_dim=2)
    t._batches = iter(t.loader)
    logged = t.train_step()
    assert {"critic/gp", "critic/critic_gap", "critic/d_real", "generator/loss"} <= set(logged)
    assert "critic/d_acc" not in logged  # critic values have no decision threshold


@pytest.mark.slow
def test_ema_generator_is_kept_apart_and_used_for_sampling(tmp_path):
    t = trainer(tmp_path, "gan", points(128), replace(QUICK, steps=5), ema=0.9, hidden=(16,), latent_dim=2)
    model = t.model
    assert any(k.startswith("g_ema.") for k in model.state_dict())
    phase_params = {id(p) for ph in model.phases() for p in ph.parameters()}
    assert not any(id(p) in phase_params for p in model.g_ema.parameters())
    t.fit()
    assert int(model.ema_updates) == 5
    g, avg = (torch.cat([p.flatten() for p in m.parameters()]) for m in (model.generator, model.g_ema))
    assert not torch.equal(g, avg)
    model.eval()
    out = model.sample_with_latents(6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out["x"], model.g_ema(out["z"])) and not torch.equal(out["x"], model.generator(out["z"]))


@pytest.mark.slow
def test_ring8_modes_grow_with_training(tmp_path):
    """~10 s of training (4000 steps): 8/8 modes at 3 seeds when measured; step 0 covers none."""
    data = load_data("toy2d:ring8")
    t = trainer(tmp_path, "gan", data, replace(QUICK, batch_size=256, steps=4000, log_every=500),
                loss="minimax", hidden=(128, 128), latent_dim=8, lr_g=1e-3, lr_d=1e-3, ema=0.999)
    before = evaluate(t.model, data, split="test", metrics=["modes", "hq"])["values"]
    t.fit()
    after = evaluate(t.model, data, split="test", metrics=["modes", "hq"])["values"]
    assert after["modes"] > before["modes"] and after["modes"] >= 6, (before, after)
    assert after["hq"] > max(0.5, before["hq"]), (before, after)


@pytest.mark.slow
def test_cgan_samples_honour_the_label(tmp_path):
    data = blobs(480)
    t = trainer(tmp_path, "cgan", data, replace(QUICK, steps=300, batch_size=64), latent_dim=8, hidden=(64,),
                channels=(16, 32))
    t.fit()
    model = t.model.eval()
    y = torch.arange(4).repeat_interleave(50)
    x = model.sample(len(y), y=y, generator=torch.Generator().manual_seed(0))  # (200, 1, 12, 12)
    means = torch.stack([data.x[data.y == k].mean(0) for k in range(4)])  # (4, 1, 12, 12)
    nearest = torch.cdist(x.flatten(1), means.flatten(1)).argmin(1)
    assert (nearest == y).float().mean() > 0.9  # chance: 0.25


def test_cgan_needs_labels_and_checks_them():
    unlabelled = replace(info(points(64)), num_classes=None)
    with pytest.raises(GenlabError, match="labelled"):
        build_model(RunConfig(model="cgan", model_config=MODELS.get("cgan").Config(), data_info=unlabelled))
    model = build_model(RunConfig(model="cgan", model_config=MODELS.get("cgan").Config(hidden=(8,)),
                                  data_info=info(points(64))))
    assert model.sample_with_latents(6)["y"].tolist() == [0, 1, 2, 3, 0, 1]
    assert model.sample_with_latents(3, y=2)["y"].tolist() == [2, 2, 2]
    with pytest.raises(GenlabError, match=r"0\.\.3"):
        model.sample(2, y=torch.tensor([0, 4]))
    with pytest.raises(GenlabError, match="not class-conditional"):
        build_model(RunConfig(model="gan", model_config=MODELS.get("gan").Config(hidden=(8,)),
                              data_info=info(points(64)))).sample(2, y=1)


# --- the modes metrics -------------------------------------------------------------------------------
def test_modes_and_hq_on_hand_made_samples():
    centres, sigma = toy_centres("ring8")
    at_centres = centres.repeat(10, 1)  # (80, 2)
    assert modes_covered(at_centres, centres, sigma) == 8 and high_quality_share(at_centres, centres, sigma) == 1
    one = centres[:1].repeat(50, 1)
    assert modes_covered(one, centres, sigma) == 1 and high_quality_share(one, centres, sigma) == 1
    far = centres * 2
    assert modes_covered(far, centres, sigma) == 0 and high_quality_share(far, centres, sigma) == 0
    # the 1% rule: a mode holding 1 of 100 samples counts, 1 of 200 does not
    near = centres[0] + torch.tensor([0.02, 0.0])  # 2 sigma off: still high quality
    assert modes_covered(torch.cat([centres[1:2].repeat(99, 1), near[None]]), centres, sigma) == 2
    assert modes_covered(torch.cat([centres[1:2].repeat(199, 1), near[None]]), centres, sigma) == 1


class Replay:
    def __init__(self, x):
        self.x = x

    def sample(self, n, *, y=None, generator=None):
        return self.x[torch.randint(len(self.x), (n,), generator=generator)]


def test_modes_metrics_apply_only_to_data_with_centres():
    centres, sigma = toy_centres("ring8")
    x = centres.repeat(50, 1)
    split = {"train": torch.arange(200), "val": torch.arange(200, 300), "test": torch.arange(300, 400)}
    data = DataSet(name="r", kind="points", x=x, splits=split, meta={"centres": centres, "sigma": sigma})
    r = evaluate(Replay(x), data, metrics=["modes", "hq", "fd"], n=1000)
    assert r["values"]["modes"] == 8 and r["values"]["hq"] == 1 and "fd" in r["values"]
    plain = replace(data, meta={})
    assert evaluate(Replay(x), plain, metrics=["modes", "hq"])["info"]["skipped"].keys() == {"modes", "hq"}


# --- the command line -------------------------------------------------------------------------------
def test_cli_label(tmp_path, capsys):
    fast = ["--steps", "2", "--no-final", "--runs", str(tmp_path), "--set", "model.hidden=8",
            "--set", "train.eval_every=0", "--set", "train.sample_every=0", "--set", "train.eval_metrics=modes"]
    assert main(["-q", "train", "cgan", "--data", "digits", *fast, "--set", "model.channels=4,8"]) == 0
    assert main(["-q", "train", "gan", "--data", "toy2d:ring8", *fast]) == 0
    cgan_run, gan_run = sorted(tmp_path.iterdir())
    assert main(["sample", str(cgan_run), "-n", "5", "--label", "7", "-o", str(tmp_path / "s.npz")]) == 0
    assert np.load(tmp_path / "s.npz")["y"].tolist() == [7] * 5
    assert main(["sample", str(cgan_run), "-n", "20", "-o", str(tmp_path / "grid.png")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as img:  # 10 rows (classes) of 2 digits
        assert img.height > 4 * img.width
    capsys.readouterr()
    assert main(["sample", str(cgan_run), "--label", "10", "-o", str(tmp_path / "x.png")]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["sample", str(gan_run), "--label", "0", "-o", str(tmp_path / "x.png")]) == 2
    assert "not class-conditional" in capsys.readouterr().err


def test_auto_settings_follow_the_data_kind_and_explicit_values_win():
    """`None` config fields resolve by data kind (toy-2D recipe for points); a set value is kept."""
    from genlab.config import RunConfig
    from genlab.models import build_model
    from genlab.models.gan import WGANGPConfig

    from conftest import blobs, info, points

    on_points = build_model(RunConfig(model="wgan-gp", model_config=WGANGPConfig(), data_info=info(points(16))))
    on_images = build_model(RunConfig(model="wgan-gp", model_config=WGANGPConfig(), data_info=info(blobs(16))))
    assert on_images.config.gp_weight == 10.0 and on_points.config.gp_weight != on_images.config.gp_weight
    chosen = build_model(RunConfig(model="wgan-gp", model_config=WGANGPConfig(gp_weight=3.0),
                                   data_info=info(points(16))))
    assert chosen.config.gp_weight == 3.0


def test_image_gan_defaults_and_the_settings_its_variants_keep(tmp_path):
    """gan on images: batch 64, Adam 4e-4, R1 10 and bf16 where it is fast (docs/speed.md, time to quality); on
    points the trainer's batch 128, 2e-4, no R1 and fp32; cgan, wgan, wgan-gp and infogan keep the settings their
    figures were measured with; what the user sets wins."""
    import genlab
    from genlab.runs import load_model, open_run

    cases = [("gan", "digits", [], (64, 4e-4, 4e-4, 10.0), "auto"),
             ("gan", "toy2d:ring8", [], (128, 2e-4, 2e-4, 0.0), "fp32"),
             ("gan", "digits", ["train.batch_size=32", "model.r1=0", "train.precision=fp32"], (32, 4e-4, 4e-4, 0.0),
              "fp32"),
             ("cgan", "digits", [], (128, 2e-4, 2e-4, 0.0), "fp32"),
             ("wgan-gp", "digits", [], (128, 1e-4, 1e-4, 0.0), "fp32"),
             ("wgan", "digits", [], (128, 5e-5, 5e-5, 0.0), "fp32"),
             ("infogan", "digits", [], (128, 1e-3, 2e-4, 0.0), "auto")]
    for i, (name, data, sets, (batch, lr_g, lr_d, r1), precision) in enumerate(cases):
        run = genlab.train(name, data=data, steps=1, runs=tmp_path / str(i), progress=False, final=False,
                           overrides=["train.eval_every=0", "train.sample_every=0", "train.threads=1", *sets])
        model, config = load_model(open_run(run.path), which="last")
        assert config.train.batch_size == batch, (name, data, sets)
        assert config.train.precision == precision, (name, data, sets)  # bf16 where fast: images of gan, infogan
        assert (model.config.lr_g, model.config.lr_d, model.config.r1) == (lr_g, lr_d, r1), (name, data)
