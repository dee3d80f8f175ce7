"""Deep Feature Consistent VAE (Hou et al. 2017): the feature term, its layer weighting, the frozen net."""

from __future__ import annotations

import pytest
import torch

from genlab.config import RunConfig
from genlab.errors import GenlabError
from genlab.losses import feature_reconstruction
from genlab.models import build_model
from genlab.models.vae import VAEConfig

from conftest import TINY_NETS, blobs, info

TINY = {"latent_dim": 6, **TINY_NETS}


def test_feature_reconstruction_is_zero_for_equal_features_and_per_example():
    f = [torch.randn(3, 4, 5, 5), torch.randn(3, 8, 2, 2)]
    assert torch.equal(feature_reconstruction(f, f), torch.zeros(3))
    g = [f[0].clone(), f[1].clone()]
    g[1][0] += 1.0  # only the first example differs: 8 * 4 ones over 2 * 8 channels
    assert torch.allclose(feature_reconstruction(g, f), torch.tensor([2.0, 0.0, 0.0]))


def test_layer_norm_weighs_every_layer_alike_on_the_pixel_scale():
    f = [torch.zeros(2, 4, 5, 5), torch.zeros(2, 8, 2, 2)]
    g = [torch.ones(2, 4, 5, 5), torch.zeros(2, 8, 2, 2)]  # the large layer off by 1 everywhere
    h = [torch.zeros(2, 4, 5, 5), torch.ones(2, 8, 2, 2)]  # the small one
    # "channel": sum over positions / 2C, so the 5x5 layer counts 100 / 8 against 32 / 16
    assert torch.allclose(feature_reconstruction(g, f), torch.full((2,), 12.5))
    assert torch.allclose(feature_reconstruction(h, f), torch.full((2,), 2.0))
    # "layer": a mean over C*H*W / 2, times the pixel count: the same 10 / 2 for either layer
    for wrong in (g, h):
        assert torch.allclose(feature_reconstruction(wrong, f, norm="layer", pixels=10), torch.full((2,), 5.0))
    with pytest.raises(ValueError, match="feature norm"):
        feature_reconstruction(g, f, norm="pixel")


@pytest.mark.slow
def test_feature_net_choice_gives_the_loss_an_autoencoder_or_a_classifier():
    data = blobs(64)
    nets = {}
    for kind in ("classifier", "autoencoder"):
        cfg = VAEConfig(**{**TINY, "latent_dim": 3}, arch="conv", loss="feature", feature_net=kind,
                        feature_norm="layer")
        model = build_model(RunConfig(model="vae", model_config=cfg, data_info=info(data)))
        model.prepare(data)
        nets[kind] = model.features.net
        assert torch.isfinite(model.loss("main", {"x": data.x[:8]})["loss"])
    assert nets["classifier"].classifier and not nets["autoencoder"].classifier
    with pytest.raises(GenlabError, match="feature_net"):
        build_model(RunConfig(model="vae", model_config=VAEConfig(**TINY, arch="conv", loss="feature",
                                                                  feature_net="vgg"), data_info=info(data)))


def test_feature_consistent_vae_trains_its_decoder_not_the_feature_net():
    data = blobs(64)
    cfg = VAEConfig(**{**TINY, "latent_dim": 3}, arch="conv", loss="feature")
    model = build_model(RunConfig(model="vae", model_config=cfg, data_info=info(data)))
    model.prepare(data)
    frozen = {k: v.clone() for k, v in model.features.state_dict().items()}
    model.train()
    assert not model.features.net.training
    opt = model.phases()[0].make_optimizer(1e-2)
    out = model.loss("main", {"x": data.x[:16], "y": data.y[:16]})
    assert "feature" in out and torch.isfinite(out["loss"])
    out["loss"].backward()
    opt.step()
    assert all(torch.equal(v, model.features.state_dict()[k]) for k, v in frozen.items())
    assert model.default_eval_metrics[0] == "fd"


def test_feature_stages_compare_only_the_first_stages_and_cost_less():
    data = blobs(64)
    losses = {}
    for stages in (1, 2, 3, 4):
        cfg = VAEConfig(**{**TINY, "latent_dim": 3}, arch="conv", loss="both", feature_stages=stages)
        model = build_model(RunConfig(model="vae", model_config=cfg, data_info=info(data)))
        model.prepare(data)
        feats = model.features(data.x[:4])
        assert [f.shape[1] for f in feats] == [32, 64, 128, 128][:stages]
        torch.manual_seed(0)
        losses[stages] = float(model.loss("main", {"x": data.x[:16]})["feature"])
    assert losses[1] < losses[2] < losses[3] < losses[4]  # each stage adds a non-negative term (same init, same z)
    net = model.features.net  # stage 4 is the standardised feature layer the metrics read
    assert torch.allclose(model.features(data.x[:4])[3], net(data.x[:4]), atol=1e-5)
    with pytest.raises(GenlabError, match="feature_stages"):
        build_model(RunConfig(model="vae", model_config=VAEConfig(**TINY, arch="conv", loss="feature",
                                                                  feature_stages=5), data_info=info(data)))
