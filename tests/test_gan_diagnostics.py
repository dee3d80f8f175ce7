"""Why GANs fail, shown: D-field pictures over training, G's gradient field, the critic's gap beside quality."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import pytest
import torch

import genlab.evaluation  # noqa: F401  (registers the metrics)
import genlab.models  # noqa: F401
from genlab import losses
from genlab.api.training import make_trainer
from genlab.config import RunConfig, TrainConfig
from genlab.data.builtin import load_toy2d
from genlab.models import build_model
from genlab.pictures.dfield import dfield_applies, generator_field, has_critic
from genlab.pictures.run_pictures import write_run_pictures
from genlab.registry import MODELS
from genlab.runs import new_run
from genlab.runs.logs import paired_panels

from conftest import blobs, info, points

QUICK = TrainConfig(batch_size=32, eval_every=0, sample_every=0, checkpoint_every=0, log_every=1,
                    eval_metrics=(), threads=1)
TINY = {"hidden": (16,), "latent_dim": 2, "channels": (4, 8)}


def trainer(tmp_path, name, data, train=QUICK, **model):
    cfg = RunConfig(model=name, model_config=MODELS.get(name).Config(**{**TINY, **model}), train=train,
                    data_info=info(data))
    run = new_run(tmp_path, name, data.name)
    run.write_config(cfg)
    return make_trainer(build_model(cfg), data, run, cfg.train, progress=False)


# --- the D-field pictures -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["gan", "cgan"])
def test_dfield_pictures_are_written_over_training_for_points(tmp_path, name):
    t = trainer(tmp_path, name, points(128), replace(QUICK, steps=4, sample_every=2))
    t.fit()
    shots = sorted(p.name for p in (t.run.path / "samples").glob("dfield-*.png"))
    assert shots == ["dfield-0000002.png", "dfield-0000004.png"]  # beside step-*.png, same cadence
    assert (t.run.path / "samples" / "step-0000002.png").is_file()
    paths = write_run_pictures(t.model, t.data, t.run.path)
    assert t.run.path / "dfield.png" in paths and (t.run.path / "dfield.png").stat().st_size > 5000


def test_no_dfield_for_image_data_or_models_without_a_critic(tmp_path):
    t = trainer(tmp_path, "gan", blobs(64), replace(QUICK, steps=2, sample_every=1))
    t.fit()
    assert has_critic(t.model) and not dfield_applies(t.model, t.data)
    assert list((t.run.path / "samples").glob("step-*.png")) and not list((t.run.path / "samples").glob("dfield-*"))
    assert "dfield.png" not in {p.name for p in write_run_pictures(t.model, t.data, t.run.path)}
    vae = build_model(RunConfig(model="vae", model_config=MODELS.get("vae").Config(), data_info=info(points(16))))
    assert not has_critic(vae) and not dfield_applies(vae, points(16))


# --- G's gradient field ---------------------------------------------------------------------------------
CENTRE = torch.tensor([0.5, -1.0])


def bump(x):
    """A hand-made critic: highest at CENTRE, D(x) = 2 - |x - c|^2 (logits or critic values)."""
    return 2.0 - (x - CENTRE).pow(2).sum(1)


@pytest.mark.parametrize("kind", ["minimax", "nonsaturating", "hinge", "wasserstein"])
def test_gradient_arrows_point_uphill_on_a_hand_made_critic(kind):
    x = torch.tensor([[2.0, 0.0], [-1.0, -1.0], [0.5, 3.0], [0.6, -1.1]])
    d, push = generator_field(bump, partial(losses.gan_g_loss, kind), x)
    grad_d = -2 * (x - CENTRE)  # dD/dx, pointing at the bump's top
    assert torch.allclose(d, bump(x))
    cos = torch.nn.functional.cosine_similarity(push, grad_d, dim=1)
    assert torch.allclose(cos, torch.ones(4), atol=1e-5), cos  # every arrow points up D's slope
    # per point, the size is the loss's derivative: -l'(D) |grad D| (batch size does not matter)
    slope = {"minimax": torch.sigmoid(d), "nonsaturating": torch.sigmoid(-d),
             "hinge": torch.ones(4), "wasserstein": torch.ones(4)}[kind]
    assert torch.allclose(push, slope[:, None] * grad_d, atol=1e-5)


def test_minimax_arrows_vanish_where_d_rejects_the_fakes():
    x = torch.tensor([[4.0, 4.0]])  # far from the bump: D(x) = 2 - 36.25, a confident "fake"
    _, mm = generator_field(bump, partial(losses.gan_g_loss, "minimax"), x)
    _, ns = generator_field(bump, partial(losses.gan_g_loss, "nonsaturating"), x)
    assert mm.norm() < 1e-10 < 1.0 < ns.norm()


def test_the_model_exposes_its_critic_and_generator_loss():
    model = build_model(RunConfig(model="gan", model_config=MODELS.get("gan").Config(loss="minimax", **TINY),
                                  data_info=info(points(16))))
    d = torch.tensor([-3.0, 1.0])
    assert model.generator_loss(d).item() == pytest.approx(losses.gan_g_loss("minimax", d).item())
    assert model.critic_is_logit
    x = torch.randn(5, 2)
    d, push = generator_field(model.critic, model.generator_loss, x)
    assert d.shape == (5,) and push.shape == (5, 2) and all(p.grad is None for p in model.parameters())


# --- the Wasserstein estimate beside quality -----------------------------------------------------------
@pytest.mark.slow
def test_wasserstein_estimate_is_logged_and_drawn_beside_quality(tmp_path):
    data = load_toy2d("ring8", n=400)
    t = trainer(tmp_path, "wgan-gp", data, replace(QUICK, steps=4, eval_every=2, eval_metrics=None, eval_n=200))
    t.fit()
    stats = [json.loads(line) for line in (t.run.path / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 4
    for row in stats:  # E[D(real)] - E[D(fake)]: the critic's estimate of W1
        assert row["critic/critic_gap"] == pytest.approx(row["critic/d_real"] - row["critic/d_fake"], abs=1e-5)
    metrics = [json.loads(line) for line in (t.run.path / "metrics.jsonl").read_text().splitlines()]
    assert {"fd", "hq", "modes"} <= set(metrics[-1])  # the GAN's default validation metrics on toy2d
    assert paired_panels(["critic/loss", "critic/critic_gap"], ["fd", "hq"]) == [
        ("critic/critic_gap", "fd"), ("critic/critic_gap", "hq")]
    assert paired_panels(["loss", "kl"], ["fd"]) == []
    assert (t.run.path / "curves.png").stat().st_size > 10_000
