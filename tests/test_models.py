"""The shared model contract, run over every registered model on images and on 2-D points."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import genlab.models  # noqa: F401  (registration)
from genlab.config import RunConfig
from genlab.models import build_model
from genlab.models import capabilities as caps
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


# --- declared capabilities: each family has the members of exactly what it declares, and they behave ----
def test_declared_capabilities_are_the_structural_ones(case):
    """A family declares a capability (inherits its Protocol) if and only if it has its members: no model
    can be asked for what it does not declare, and nothing it can do goes undeclared."""
    name, _, model = case
    for capability in caps.CAPABILITIES:
        declared = caps.issubclass_declared(type(model), capability)
        assert isinstance(model, capability) == declared, (name, capability.__name__)


def _x(data, n=6):
    return data.x[:n]


def check_decodes(model, data):
    z = model.prior_sample(4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, model.latent_size)
    assert model.decode(z).shape == (4, *data.shape)


def check_reconstructs(model, data):
    x = _x(data)
    assert model.reconstruct(x).shape == x.shape


def check_encodes(model, data):
    x = _x(data)
    z = model.encode(x)
    assert z.shape == (len(x), model.latent_size) and torch.isfinite(z).all()
    assert model.decode(z).shape == x.shape


def check_likelihood_bound(model, data):
    x = _x(data)
    elbo, bound = model.elbo(x), model.iwae_bound(x, 4)
    assert elbo.shape == bound.shape == (len(x),)
    assert torch.isfinite(elbo).all() and torch.isfinite(bound).all()


def check_class_conditional(model, data):
    assert model.num_classes == data.num_classes
    g = torch.Generator().manual_seed(0)
    one = model.sample(3, y=torch.full((3,), 1), generator=g)
    assert one.shape == (3, *data.shape)


def check_caption_conditional(model, data):
    condition = model.parse_caption(model.grammar.vocabulary[0])
    assert condition.shape[0] == 1
    assert model.sample(3, y=condition.expand(3, -1)).shape == (3, *data.shape)


def check_readable_codes(model, data):
    assert model.code_layout.size == model.latent_size


def check_predicts_codes(model, data):
    cat, cont = model.predict_codes(_x(data))
    assert cat.shape[0] == cont.shape[0] == 6


def check_named_units(model, data):
    assert model.unit_names and all(isinstance(u, str) for u in model.unit_names)
    for unit in model.unit_names:
        lo, hi = model.unit_range(unit)
        assert lo < hi
        assert model.unit_period(unit) is None or model.unit_period(unit) > 0


def check_transforms(model, data):
    x = _x(data)
    assert model.transform(x, rotate=0.5, scale=1.1, move=(0.1, 0.0)).shape == x.shape


def check_clusters(model, data):
    probs = model.cluster_probs(_x(data))
    assert probs.shape[0] == 6 and torch.allclose(probs.sum(1), torch.ones(6), atol=1e-5)


def check_classifies(model, data):
    scores = model.classify(_x(data))
    assert scores.shape == (6, data.num_classes)


def check_learns_from_partial_labels(model, data):
    hidden = {"x": data.x[:8], "y": torch.where(torch.arange(8) % 2 == 0, data.y[:8], -1)}
    for phase in model.phases():
        assert torch.isfinite(model.loss(phase.name, hidden)["loss"])


def check_codes_to_bits(model, data):
    x = _x(data)
    bits = model.estimated_bits(x)
    assert bits.shape == (6,) and (bits > 0).all()
    assert model.rd_objective(bits / 64, torch.full((6,), 0.01)).shape == (6,)
    assert model.coding_tables() is not None and model.lmbda > 0


def check_quality_ladder(model, data):
    low, high = model.ladder_settings(1), model.ladder_settings(4)
    assert set(low) == set(model.ladder_fields) and low != high
    assert model.quality == 0  # a model trained outside a ladder


def check_adversarial(model, data):
    x = _x(data)
    scores = model.critic(x) if not isinstance(model, caps.ClassConditional) else model.critic(x, data.y[:6])
    assert scores.shape == (6,)
    assert model.generator_loss(scores).shape == ()
    assert isinstance(model.critic_is_logit, bool) and isinstance(model.objective, str)
    assert model.generator_sample(3).shape == (3, *data.shape)


CHECKS = {caps.Decodes: check_decodes, caps.Reconstructs: check_reconstructs, caps.Encodes: check_encodes,
          caps.LikelihoodBound: check_likelihood_bound, caps.ClassConditional: check_class_conditional,
          caps.CaptionConditional: check_caption_conditional, caps.ReadableCodes: check_readable_codes,
          caps.PredictsCodes: check_predicts_codes,
          caps.NamedUnits: check_named_units, caps.Transforms: check_transforms, caps.Clusters: check_clusters,
          caps.Classifies: check_classifies, caps.LearnsFromPartialLabels: check_learns_from_partial_labels,
          caps.CodesToBits: check_codes_to_bits, caps.QualityLadder: check_quality_ladder,
          caps.Adversarial: check_adversarial}


def test_every_capability_has_a_behaviour_check():
    assert set(CHECKS) == set(caps.CAPABILITIES)


def test_declared_capabilities_behave(case):
    name, data, model = case
    model.eval()
    declared = [c for c in caps.CAPABILITIES if isinstance(model, c)]
    with torch.no_grad():
        for capability in declared:
            if capability is caps.LearnsFromPartialLabels:
                continue  # a training loss: checked with gradients below
            CHECKS[capability](model, data)
    if caps.LearnsFromPartialLabels in declared:
        model.train()
        check_learns_from_partial_labels(model, data)


def test_sample_with_latents_returns_the_codes(case):
    _, _, model = case
    out = model.eval().sample_with_latents(4, generator=torch.Generator().manual_seed(0))
    assert out["z"].shape[0] == 4 and out["x"].shape[0] == 4
    if isinstance(model, caps.Decodes):  # a class-conditional model decodes z with the labels it drew
        decoded = model.decode(out["z"], out["y"]) if "y" in out else model.decode(out["z"])
        if model.data_info.kind == "points" and isinstance(model, caps.LikelihoodBound):
            # points of a likelihood model are draws of p(x|z): noise around the decoded mean, not the mean
            noise = (out["x"] - decoded).abs()
            assert 0 < noise.max() < 5, noise
        else:  # images (and every generator): the decoded mean itself
            assert torch.allclose(decoded, out["x"])


@pytest.mark.parametrize("size", [8, 12, 28, 32])
@pytest.mark.parametrize("widths", [(8,), (8, 16), (8, 16, 32)])
def test_conv_decoder_reaches_the_image_size_with_fewer_widths(size, widths):
    from genlab.nn.blocks import ConvDecoder

    assert ConvDecoder(4, (1, size, size), widths)(torch.zeros(2, 4)).shape == (2, 1, size, size)


def test_gdn_learns_its_cross_channel_weights():
    """GDN's gamma starts diagonal; its off-diagonal entries must get a gradient and move, or the layer
    stays a per-channel normalisation (storing sqrt(gamma) without a pedestal gave them exactly 0)."""
    from genlab.nn.blocks import GDN

    torch.manual_seed(0)
    for inverse in (False, True):
        gdn = GDN(4, inverse=inverse)
        x = torch.randn(8, 4, 6, 6)
        beta, gamma = 1.0, 0.1 * torch.eye(4)
        norm = (beta + torch.einsum("ij,njhw->nihw", gamma, x.pow(2))).sqrt()
        assert torch.allclose(gdn(x), x * norm if inverse else x / norm, atol=1e-5)
        true_gamma = gamma + 0.5 * torch.roll(torch.eye(4), 1, dims=1)  # each channel also divided by the next
        true_norm = (beta + torch.einsum("ij,njhw->nihw", true_gamma, x.pow(2))).sqrt()
        target = x * true_norm if inverse else x / true_norm
        opt = torch.optim.Adam(gdn.parameters(), lr=1e-2)
        for _ in range(50):
            opt.zero_grad()
            (gdn(x) - target).pow(2).mean().backward()
            opt.step()
        off = gdn._value(gdn.gamma_sqrt, 0.0) * (1 - torch.eye(4))
        assert off.max() > 1e-3, inverse
        assert (gdn._value(gdn.gamma_sqrt, 0.0) >= 0).all() and (gdn._value(gdn.beta_sqrt, gdn.BETA_MIN) > 0).all()
