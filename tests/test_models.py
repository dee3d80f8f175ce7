"""The shared model contract, run over every registered model on images and on 2-D points."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import genlab.models  # noqa: F401  (registration)
from genlab.config import RunConfig
from genlab.models import build_model
from genlab.registry import MODELS

from conftest import blobs, info, points

# the smallest config of each model family that still exercises every layer; a new family adds
# nothing here unless its fields differ
TINY = {"latent_dim": 3, "hidden": (32,), "channels": (8, 16)}
TINY_FOR = {"dcign": {"latent_dim": 6}}  # its 4 named units come first: it needs latent_dim >= 4


def tiny(name: str, data, **extra):
    cls = MODELS.get(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    cfg = cls.Config(**{k: v for k, v in {**TINY, **TINY_FOR.get(name, {}), **extra}.items() if k in fields})
    return build_model(RunConfig(model=name, model_config=cfg, data_info=info(data)))


CASES = [(m, d, arch) for m in MODELS.names() for d in ("image", "points") for arch in ("mlp", "conv")
         if not (d == "points" and arch == "conv")]


@pytest.fixture(params=CASES, ids=lambda c: "-".join(c))
def case(request):
    name, kind, arch = request.param
    data = blobs(64) if kind == "image" else points(64)
    torch.manual_seed(0)
    return name, data, tiny(name, data, arch=arch)


def batch(data, n=16):
    return {"x": data.x[:n], "y": data.y[:n]}


def test_sample_shape_and_range(case):
    _, data, model = case
    x = model.eval().sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, *data.shape)
    if data.kind == "image":
        assert 0 <= x.min() and x.max() <= 1


def test_same_seed_same_samples(case):
    _, _, model = case
    model.eval()
    a = model.sample(4, generator=torch.Generator().manual_seed(3))
    b = model.sample(4, generator=torch.Generator().manual_seed(3))
    c = model.sample(4, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_every_phase_changes_its_weights(case):
    _, data, model = case
    for phase in model.phases():
        params = [p for p in phase.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params]
        opt = phase.make_optimizer(1e-2)
        out = model.loss(phase.name, batch(data), step=0)
        assert out["loss"].shape == () and torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        assert any(not torch.equal(a, p) for a, p in zip(before, params, strict=True)), phase.name


def test_every_trainable_parameter_of_a_phase_gets_a_gradient(case):
    """Distributed training syncs each phase's parameters through DDP without find_unused_parameters:
    every one must get a gradient from the phase's loss, unless the phase says otherwise."""
    _, data, model = case
    for phase in model.phases():
        if phase.unused_parameters:
            continue
        params = [p for p in phase.parameters() if p.requires_grad]
        model.zero_grad(set_to_none=True)
        model.loss(phase.name, batch(data), step=0)["loss"].backward()
        missing = [i for i, p in enumerate(params) if p.grad is None]
        assert not missing, f"phase {phase.name}: {len(missing)} of {len(params)} parameters get no gradient"


def test_every_phase_runs_in_the_channels_last_layout(case):
    """The trainer trains conv models channels-last (train.memory_format="auto"): no phase may rely on
    contiguous NCHW tensors (a .view on a conv output would fail)."""
    from genlab.training import speed

    _, data, model = case
    if not speed.channels_last("auto", model):
        pytest.skip("no 2-D convolutions")
    model.to(memory_format=torch.channels_last)
    nhwc = speed.to_device(batch(data), torch.device("cpu"), True)
    for phase in model.phases():
        loss = model.loss(phase.name, nhwc, step=0)["loss"]
        loss.backward()
        assert torch.isfinite(loss), phase.name


def test_state_dict_round_trip(case):
    name, data, model = case
    twin = tiny(name, data, arch=model.config.arch)
    twin.load_state_dict(model.state_dict())
    model.eval(), twin.eval()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.equal(model.sample(3, generator=g()), twin.sample(3, generator=g()))


def test_encoder_surface(case):
    _, data, model = case
    if not hasattr(model, "encode"):
        pytest.skip("no encoder")
    x = data.x[:6]
    z = model.encode(x)
    assert z.shape == (6, model.config.latent_dim)
    assert model.decode(z).shape == x.shape
    assert model.reconstruct(x).shape == x.shape


def test_sample_with_latents_returns_the_codes(case):
    _, _, model = case
    out = model.eval().sample_with_latents(4, generator=torch.Generator().manual_seed(0))
    assert out["z"].shape[0] == 4 and out["x"].shape[0] == 4
    if hasattr(model, "decode"):  # a class-conditional model decodes z with the labels it drew
        decoded = model.decode(out["z"], out["y"]) if "y" in out else model.decode(out["z"])
        assert torch.allclose(decoded, out["x"]) or model.data_info.kind == "points"


@pytest.mark.parametrize("size", [8, 12, 28, 32])
@pytest.mark.parametrize("widths", [(8,), (8, 16), (8, 16, 32)])
def test_conv_decoder_reaches_the_image_size_with_fewer_widths(size, widths):
    from genlab.nn.blocks import ConvDecoder

    assert ConvDecoder(4, (1, size, size), widths)(torch.zeros(2, 4)).shape == (2, 1, size, size)
