"""DC-IGN's named units: the rotation unit's harmonics, symmetric turns, swap partners, the warp decoder,
where the binding is learned, the pooled encoder head."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.data import render_shapes
from genlab.data.factors import FactorLoader
from genlab.errors import GenlabError
from genlab.evaluation import semantics as S
from genlab.nn.blocks import ConvEncoder

from conftest import tiny_dcign


class Fixed(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x):
        return self.out


def test_rotation_unit_is_read_from_the_lowest_harmonic_the_image_determines(shapes):
    model = tiny_dcign(shapes)
    assert model.harmonic_orders() == {"rotation": (1, 2, 4)}
    theta = 2.0
    h = torch.tensor([[math.cos(k * theta), math.sin(k * theta)] for k in (1, 2, 4)])  # a heart: all known
    square = h.clone()
    square[:2] = 0  # a square's image fixes only the 4th harmonic
    model.encoder = Fixed(torch.zeros(2, model.encoder_outputs()))  # means and log-variances
    model.pose_net = Fixed(torch.stack([h.flatten(), square.flatten()]))  # the harmonics
    post, harmonics = model.encode_all(torch.zeros(2, 1, 32, 32))
    assert post.mu[0, 0] == pytest.approx(theta / math.pi, abs=1e-6)
    assert post.mu[1, 0] == pytest.approx(theta / math.pi - 0.5, abs=1e-6)  # the same square image
    f = torch.tensor([[2.0, 0.7, theta, 0.5, 0.5]])
    post.mu[0, 1:4] = torch.tensor([model.unit_value(n, v) for n, v in (("scale", 0.7), ("x", 0.5), ("y", 0.5))])
    assert model.binding(post.mu[:1], f, {"rotation": harmonics["rotation"][:1]}).item() == pytest.approx(0, abs=1e-6)
    # a square whose undetermined harmonics are 0 is bound exactly when its period is known
    g = f.clone()
    g[0, 0] = 0.0
    post.mu[1, 1:4] = post.mu[0, 1:4]
    sq = {"rotation": harmonics["rotation"][1:]}
    assert model.binding(post.mu[1:], g, sq, shapes.meta["item_periods"](g)).item() == pytest.approx(0, abs=1e-5)
    assert model.binding(post.mu[1:], g, sq).item() > 10


def test_in_training_the_items_symmetry_picks_the_harmonic_not_its_confidence(shapes):
    model = tiny_dcign(shapes)
    theta = 2.0
    weak = torch.tensor([[0.1 * math.cos(theta), 0.1 * math.sin(theta)],  # a heart's k = 1, not yet learned
                         [math.cos(2 * theta + 1), math.sin(2 * theta + 1)], [1.0, 0.0]])
    model.encoder = Fixed(torch.zeros(1, model.encoder_outputs()))
    model.pose_net = Fixed(weak.flatten()[None])
    x = torch.zeros(1, 1, 32, 32)
    heart = shapes.meta["item_periods"](torch.tensor([[2.0, 0.7, theta, 0.5, 0.5]]))
    by_k2 = math.atan2(math.sin(2 * theta + 1), math.cos(2 * theta + 1)) / (2 * math.pi)
    assert model.encode_all(x)[0].mu[0, 0] == pytest.approx(by_k2, abs=1e-6)  # by confidence: k = 2
    assert model.encode_all(x, heart)[0].mu[0, 0] == pytest.approx(theta / math.pi, abs=1e-6)  # by the heart's period
    square = shapes.meta["item_periods"](torch.tensor([[0.0, 0.7, theta, 0.5, 0.5]]))
    assert model.encode_all(x, square)[0].mu[0, 0] == pytest.approx(0.0, abs=1e-6)  # k = 4 (angle 0 here)


# --- the rotation unit: uniform prior, symmetric turns, fixed posterior std ------------------------
def test_rotation_unit_has_no_preferred_angle_and_the_prior_covers_a_turn(shapes):
    model = tiny_dcign(shapes)
    post = model.posterior(shapes.x[:4])
    turned = post.__class__(post.mu + torch.tensor([0.7, 0, 0, 0, 0, 0]), post.logvar)
    assert torch.allclose(model.kl(post), model.kl(turned))  # the angle costs nothing ...
    moved = post.__class__(post.mu + torch.tensor([0, 0.7, 0, 0, 0, 0]), post.logvar)
    assert not torch.allclose(model.kl(post), model.kl(moved))  # ... a linear unit does
    z = model.prior_sample(2000, torch.Generator().manual_seed(0))
    assert z[:, 0].min() >= -1 and z[:, 0].max() < 1 and z[:, 0].std() == pytest.approx(2 / 12**0.5, abs=0.03)


def test_symmetric_turns_turn_each_item_by_multiples_of_its_own_period(shapes):
    model = tiny_dcign(shapes)
    f = torch.tensor([[0.0, 0.7, 0.3, 0.5, 0.5], [1.0, 0.7, 0.3, 0.5, 0.5], [2.0, 0.7, 0.3, 0.5, 0.5]]).repeat(200, 1)
    z = torch.zeros(len(f), 6)
    torch.manual_seed(0)
    turned = model.symmetric_turns(z, shapes.meta["item_periods"](f))
    assert torch.equal(turned[:, 1:], z[:, 1:])
    shift = turned[:, 0].view(200, 3)  # unit 2 = a whole turn: square 0.5 steps, ellipse 1, heart none
    assert set(shift[:, 0].tolist()) == {0.0, 0.5, 1.0, 1.5}
    assert set(shift[:, 1].tolist()) == {0.0, 1.0} and set(shift[:, 2].tolist()) == {0.0}
    # the same image: a shape rendered at the turned angle is the shape rendered at the original
    g = f.clone()
    g[:, 2] = model.factor_value("rotation", turned[:, 0] + model.unit_value("rotation", 0.3))
    assert torch.equal(shapes.render(g), shapes.render(f))


def test_bound_units_have_the_bindings_std_and_free_units_learn_theirs(shapes):
    model = tiny_dcign(shapes, bind_sigma=0.05)
    post = model.posterior(shapes.x[:4])
    std = post.logvar.mul(0.5).exp()
    assert torch.allclose(std[:, 0], torch.full((4,), 0.05 * 2))  # a turn is 2 units
    assert torch.allclose(std[:, 2], torch.full((4,), 0.05 * 2 * 3**0.5))  # x spans 2 sqrt 3 units
    assert not torch.allclose(std[:, 4], std[:, 5])
    learned = tiny_dcign(shapes, fixed_sigma=False).posterior(shapes.x[:4]).logvar
    assert learned[:, 0].std() > 0


def test_partners_are_the_same_items_with_the_bound_factors_redrawn(shapes):
    model = tiny_dcign(shapes, swap=0.5)
    assert model.batch_plan.partner_vary == ("rotation", "scale", "x", "y")
    loader = FactorLoader(shapes, model.batch_plan, batch_size=16, seed=0)
    for batch, _ in zip(loader, range(6), strict=False):
        f, p = batch["factors"], batch["partner_factors"]
        assert torch.equal(p[:, 0], f[:, 0])  # the same shape ...
        assert (p[:, 1:] != f[:, 1:]).all(1).float().mean() > 0.9  # ... in another pose
        assert torch.equal(batch["partner"], shapes.render(p))
    assert "partner" not in next(iter(FactorLoader(shapes, tiny_dcign(shapes, swap=0.0).batch_plan, batch_size=4)))


def test_swap_replaces_the_free_units_only_and_only_for_its_share(shapes):
    partner = torch.randn(64, 6)  # a sample of each partner's posterior
    z = torch.zeros(64, 6)
    swapped = tiny_dcign(shapes, swap=1.0).swap_free(z, partner)
    assert torch.equal(swapped[:, :4], z[:, :4]) and (swapped[:, 4:] != 0).all()
    assert torch.equal(tiny_dcign(shapes, swap=1e-9).swap_free(z, partner), z)
    half = tiny_dcign(shapes, swap=0.5).swap_free(z, partner)
    assert 10 < int((half[:, 4] != 0).sum()) < 54


# --- the warp decoder: the pose units applied as geometry ----------------------------------------------
def test_warp_of_the_upright_shape_by_the_true_pose_is_the_render(shapes):
    """With the template an upright, centred render and the read-outs set to the shapes' geometry, the
    warp redraws every item: this pins the frame (y down) and the sense of rotation (a heart's point)."""
    from genlab.nn.warp import PoseWarpDecoder

    f = shapes.factors[:120]
    zoom = 1.9  # the template shows the shape larger than any item, so bilinear sampling loses little
    template = render_shapes(f[:, 0], zoom, 0.0, 0.5, 0.5, size=32) * 20 - 10  # (N, 1, 32, 32) logits
    decoder = PoseWarpDecoder(2, (1, 32, 32))
    s3 = math.sqrt(3.0)
    with torch.no_grad():  # size = scale / zoom, centre = x - 1/2 in [-1, 1] coordinates, from the units
        decoder.gain.copy_(torch.tensor([0.25 / s3 / zoom, 0.5 / s3, 0.5 / s3]))
        decoder.bias.copy_(torch.tensor([0.75 / zoom, 0.0, 0.0]))
    units = torch.stack([s3 * (4 * f[:, 1] - 3), s3 * (2 * f[:, 3] - 1), s3 * (2 * f[:, 4] - 1)], 1)  # (N, 3)
    drawn = decoder.warp(template, f[:, 2], units) > 0
    ious = S.iou(drawn.float(), shapes.x[:120])
    assert ious.median() > 0.93 and ious.min() > 0.8
    hearts = f[:, 0] == 2
    mirrored = decoder.warp(template, -f[:, 2], units) > 0  # the other sense of rotation
    assert S.iou(mirrored.float(), shapes.x[:120])[hearts].median() < ious[hearts].median() - 0.2


def test_warp_dcign_quarter_turn_of_the_unit_is_a_quarter_turn_of_the_picture(shapes):
    model = tiny_dcign(shapes, decoder="warp").eval()
    x = shapes.x[:4]
    assert torch.allclose(model.transform(x), model.reconstruct(x))
    z = model.encode(x)
    # a quarter turn of the warp is a quarter turn of the picture about the object's centre; with the
    # centre in the middle of the image that is torch.rot90 (counter-clockwise as displayed)
    z[:, 2:4] = model.unit_value("x", torch.tensor(0.5))
    middle, turned = model.decode(z), model.decode(z.clone().index_add_(
        1, torch.tensor([0]), torch.full((4, 1), model.unit_value("rotation", math.pi / 2))))
    assert torch.allclose(turned, torch.rot90(middle, 1, dims=(2, 3)), atol=1e-4)


def test_named_units_map_factor_values_both_ways_and_name_a_missing_unit(shapes):
    model = tiny_dcign(shapes)
    assert model.unit_range("rotation") == pytest.approx((0.0, 2.0))  # one whole turn
    assert model.unit_period("scale") is None and model.unit_period("rotation") == pytest.approx(0.5)  # squares
    v = torch.tensor([0.6, 0.9])
    assert torch.allclose(model.factor_value("scale", model.unit_value("scale", v)), v)
    with pytest.raises(GenlabError, match="has no unit 'colour'; its units are rotation, scale, x, y"):
        model.unit_value("colour", 1.0)


def test_warp_decoder_needs_the_four_pose_units(shapes):
    with pytest.raises(GenlabError, match="decoder=warp needs"):
        tiny_dcign(shapes, decoder="warp", units=("rotation", "scale"))
    with pytest.raises(GenlabError, match="conv or warp"):
        tiny_dcign(shapes, decoder="mlp")


def test_binding_is_learned_from_free_batches_only_unless_asked(shapes):
    loader = FactorLoader(shapes, tiny_dcign(shapes).batch_plan, batch_size=16, seed=0)
    batches = [next(iter(loader)) for _ in range(12)]
    one = next(b for b in batches if int(b["vary"][0]) >= 0)
    free = next(b for b in batches if int(b["vary"][0]) < 0)
    assert "bind" not in tiny_dcign(shapes).loss(None, one) and "bind" in tiny_dcign(shapes).loss(None, free)
    assert "bind" in tiny_dcign(shapes, bind_all=True).loss(None, one)


def test_pooled_encoder_head_reads_the_object_wherever_it_is():
    """The pooled head of ConvEncoder sees mean and max over positions: with the flat head silenced, an
    object moved by the encoder's total stride (8 pixels) gives the same output; the flat head alone
    does not."""

    torch.manual_seed(0)
    enc = ConvEncoder((1, 96, 96), 5, (8, 16, 32), pooled=True)  # a 12x12 map; each position sees 22 pixels
    a = render_shapes(2, 0.5, 0.7, 1 / 3, 1 / 3, size=96)  # a heart 24 pixels wide, centred at (40, 40) ...
    b = torch.roll(a, shifts=(8, 8), dims=(2, 3))  # ... the same 8 pixels down and right: far from the border
    with torch.no_grad():
        assert not torch.allclose(enc(a), enc(b), atol=1e-4)
        enc.fc.weight.zero_()
        assert torch.allclose(enc(a), enc(b), atol=1e-5)
    assert ConvEncoder((1, 96, 96), 5, (8, 16, 32)).pool_fc is None


def test_only_the_binding_trains_the_harmonics_unless_angle_grad(shapes):
    batch = next(iter(FactorLoader(shapes, tiny_dcign(shapes).batch_plan, batch_size=16, seed=0)))
    grads = {}
    for angle_grad, bind in ((False, 0.0), (True, 0.0), (False, 1.0)):
        torch.manual_seed(0)
        model = tiny_dcign(shapes, angle_grad=angle_grad, bind=bind, bind_all=True, pose_encoder=False)
        model.loss(None, batch)["loss"].backward()
        grads[angle_grad, bind] = model.encoder.fc.weight.grad[12:].abs().sum().item()  # rows of the harmonics
    assert grads[False, 0.0] == 0.0 and grads[True, 0.0] > 0 and grads[False, 1.0] > 0


def test_pose_encoder_owns_the_harmonics_and_only_the_binding_trains_it_without_angle_grad(shapes):
    """With ``pose_encoder`` the harmonics come from a network of their own: the main encoder gives means
    and log-variances only, the pose network's gradient comes from the binding alone (angle_grad off),
    and a swap partner is encoded without it (only its free units are used)."""
    batch = next(iter(FactorLoader(shapes, tiny_dcign(shapes).batch_plan, batch_size=16, seed=0)))
    model = tiny_dcign(shapes, pose_encoder=True, angle_grad=False, bind=0.0)
    assert model.encoder_outputs() == 2 * model.config.latent_dim
    post, harmonics = model.encode_all(batch["x"])
    assert harmonics["rotation"].shape == (16, 3, 2) and post.mu.shape == (16, model.config.latent_dim)
    assert model.encode_all(batch["x"], pose=False)[1] == {}
    model.loss(None, batch)["loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.pose_net.parameters())
    model = tiny_dcign(shapes, pose_encoder=True, angle_grad=False, bind_all=True)
    model.loss(None, batch)["loss"].backward()
    assert model.pose_net.fc.weight.grad.abs().sum() > 0
    mlp = tiny_dcign(shapes, arch="mlp", decoder="conv")  # not a conv net: the pose network is an MLP too
    assert not isinstance(mlp.pose_net, ConvEncoder) and mlp.encode_all(batch["x"])[1]["rotation"].shape == (16, 3, 2)

