"""Forcing the latent to mean something: DC-IGN clamping, one-factor batches, novel views (DFC-VAE: test_dfc_vae.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.compression.rd import to_uint8
from genlab.data import load_data, render_shapes
from genlab.data.factors import FactorBatches, FactorLoader
from genlab.evaluation import semantics as S
from genlab.losses import dcign_clamp

from conftest import tiny_dcign


# --- the renderer is exact -----------------------------------------------------------------------
@pytest.mark.parametrize("rotation", [0.0, 0.3, math.pi / 4])
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_renderer_pixel_count_matches_the_area(rotation, scale):
    size = 128
    r = 0.25 * size * scale  # bounding radius in pixels
    # a square of half-side r / sqrt 2 and an ellipse with semi-axes r and r / 2
    for kind, area, perimeter in ((0, 2 * r * r, 4 * math.sqrt(2) * r), (1, math.pi * r * r / 2, 2.5 * math.pi * r)):
        count = float(render_shapes(kind, scale, rotation, 0.5, 0.5, size=size).sum())
        assert abs(count - area) <= 0.5 * perimeter, (kind, count, area)  # within rasterisation error


def test_render_factors_redraws_the_data_exactly(shapes):
    f = shapes.factors[:100]
    assert torch.equal(shapes.render(f), shapes.x[:100])
    turned = f.clone()
    turned[:, 2] += 2 * math.pi  # rotation is taken modulo a turn
    assert torch.equal(shapes.render(turned), shapes.x[:100])


# --- one-factor batches ----------------------------------------------------------------------------
def test_one_factor_batches_vary_one_factor_and_resume_exactly(shapes):
    plan = FactorBatches(vary=("rotation", "scale", "x", "y", "shape"), free_share=0.0)
    loader = FactorLoader(shapes, plan, batch_size=16, seed=3)
    it = iter(loader)
    for _ in range(10):
        b = next(it)
        k = int(b["vary"][0])
        changing = [j for j in range(5) if len(torch.unique(b["factors"][:, j])) > 1]
        assert changing in ([k], [])  # only the announced factor changes
        assert torch.equal(b["x"], shapes.render(b["factors"]))
    state = loader.state_dict()
    twin = FactorLoader(shapes, plan, batch_size=16, seed=99)
    twin.load_state_dict(state)
    a, c = next(it), next(iter(twin))
    assert torch.equal(a["x"], c["x"]) and torch.equal(a["vary"], c["vary"])


def test_train_dcign_on_data_that_cannot_render_is_one_line(tmp_path, capsys):
    assert main(["train", "dcign", "--data", "digits", "--steps", "1", "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot render from factors" in err[0]
    assert not any(tmp_path.iterdir())  # no run folder left behind


# --- DC-IGN clamping ---------------------------------------------------------------------------------
def test_clamped_units_get_the_mean_forward_and_the_clamped_gradient_backward():
    torch.manual_seed(0)
    z = torch.randn(8, 5, requires_grad=True)
    clamped = torch.tensor([True, False, True, True, True])
    out = dcign_clamp(z, clamped, 0.5)
    assert torch.allclose(out[:, clamped], z[:, clamped].mean(0, keepdim=True).expand(8, 4))
    assert torch.equal(out[:, 1], z[:, 1])
    w = torch.randn(8, 5)
    (out * w).sum().backward()
    dev = z.detach() - z.detach().mean(0, keepdim=True)
    assert torch.allclose(z.grad[:, clamped], 0.5 * dev[:, clamped] / 8)  # lambda (z - mean) / B
    assert torch.equal(z.grad[:, 1], w[:, 1])  # the active unit's gradient passes unchanged


def test_model_clamps_all_units_but_the_varying_factors(shapes):
    model = tiny_dcign(shapes)
    col = shapes.factor_names.index
    rot = model.clamped_units(torch.full((4,), col("rotation")))
    assert rot.tolist() == [False, True, True, True, True, True]
    shape = model.clamped_units(torch.full((4,), col("shape")))
    assert shape.tolist() == [True, True, True, True, False, False]
    assert model.clamped_units(torch.full((4,), -1)) is None and model.clamped_units(None) is None


def test_one_factor_batch_gives_the_clamped_units_the_clamped_gradient(shapes):
    model = tiny_dcign(shapes, clamp_grad=2.0, bind=0.0, swap=0.0)  # swap would replace clamped free units
    loader = FactorLoader(shapes, model.batch_plan, batch_size=8, seed=0)
    batch = next(b for b in loader if int(b["vary"][0]) == shapes.factor_names.index("scale"))
    seen = {}
    sample = model.posterior(batch["x"]).__class__.sample

    def keep(self, generator=None):  # record the z the loss clamps
        seen["z"] = sample(self, generator)
        seen["z"].retain_grad()
        return seen["z"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model.posterior(batch["x"]).__class__, "sample", keep)
        model.loss("main", {**batch, "x": batch["x"]}, step=0)["loss"].backward()
    z = seen["z"].detach()
    clamped = model.clamped_units(batch["vary"])
    assert clamped.tolist() == [True, False, True, True, True, True]
    # lambda (z - mean) / B, whatever the decoder's gradient was: the gradient of lambda/2 mean_b ||z_b - mean||^2
    assert torch.allclose(seen["z"].grad[:, clamped], 2.0 * (z - z.mean(0))[:, clamped] / 8, atol=1e-6)
    assert seen["z"].grad[:, 1].abs().sum() > 0  # the free unit learns from the decoder


# --- transforms ----------------------------------------------------------------------------------------
def test_transform_by_zero_returns_the_reconstruction(shapes):
    model = tiny_dcign(shapes).eval()
    x = shapes.x[:6]
    assert torch.allclose(model.transform(x), model.reconstruct(x))
    assert torch.allclose(model.transform(x, rotate=0.0, scale=1.0, move=(0.0, 0.0)), model.reconstruct(x))
    assert not torch.allclose(model.transform(x, rotate=1.0), model.reconstruct(x))


def test_unit_maps_are_inverse_and_rotation_is_circular(shapes):
    model = tiny_dcign(shapes)
    assert model.unit_names == ("rotation", "scale", "x", "y")
    assert model.unit_value("rotation", math.pi) == pytest.approx(1.0)
    assert model.unit_period("rotation") == pytest.approx(0.5) and model.unit_period("scale") is None
    assert model.factor_value("scale", model.unit_value("scale", 0.7)) == pytest.approx(0.7)
    z = torch.zeros(2, 6)
    z2 = z.clone()
    z2[:, 0] += 2.0  # a whole turn of the rotation unit: the same input to the decoder
    assert torch.allclose(model.lift(z), model.lift(z2), atol=1e-6)


class Oracle(torch.nn.Module):
    """Knows the data: encodes an image as its factors mapped to units, transforms by rendering."""

    unit_names = ("rotation", "scale", "x", "y")

    def __init__(self, data):
        super().__init__()
        self.data, self.lookup = data, {bytes(x.numpy()): i for i, x in enumerate(data.x)}

    def _factors(self, x):
        return self.data.factors[[self.lookup[bytes(xi.numpy())] for xi in x]].double()

    def unit_period(self, name):
        return 0.5 if name == "rotation" else None

    def unit_range(self, name):
        """Each unit over the factor's range in the data (rotation in half turns)."""
        column = {"rotation": 2, "scale": 1, "x": 3, "y": 4}[name]
        values = self.data.factors[:, column].double() / (math.pi if name == "rotation" else 1.0)
        return float(values.min()), float(values.max())

    def encode(self, x):
        f = self._factors(x)
        return torch.stack([f[:, 2] / math.pi, f[:, 1], f[:, 3], f[:, 4], torch.randn(len(f))], 1)

    def transform(self, x, *, rotate=0.0, scale=1.0, move=(0.0, 0.0)):
        f = self._factors(x)
        f[:, 2] += rotate
        f[:, 1] *= scale
        f[:, 3] += move[0]
        f[:, 4] += move[1]
        return self.data.render(f)


def test_edit_metrics_are_one_for_an_oracle_and_low_for_doing_nothing(shapes):
    oracle = Oracle(shapes)
    for edit in ("rotate", "scale", "move"):
        ious, _ = S.edit_ious(oracle, shapes, edit, n=50)
        assert ious.min() == 1.0, edit
    lazy = Oracle(shapes)
    lazy.transform = lambda x, **_: x  # returns the input unchanged
    assert S.edit_ious(lazy, shapes, "move", n=50)[0].median() < 0.5
    more = load_data("shapes", n=3000)  # 300 test items: chance correlations stay below 0.2
    corr = S.unit_correlations(Oracle(more), more)
    assert all(v["own"] > 0.99 for v in corr.values()), corr
    assert all(v["other"] < 0.2 for v in corr.values()), corr


def test_leaks_count_active_free_units_only():
    """A free unit whose mean follows y by a few hundredths (variance < 0.01, Burda et al.'s inactive unit)
    is noise to a decoder: it is left out of "other" and reported in "other_all"; the same unit
    scaled up to an active one counts."""
    data = load_data("shapes", n=3000)
    oracle = Oracle(data)
    encode = oracle.encode

    def with_unit(gain):
        def enc(x):
            f = oracle._factors(x)
            return torch.cat([encode(x), gain * (f[:, 4:5] - 0.5)], 1)  # (N, 6): z5 follows y
        return enc

    oracle.encode = with_unit(0.05)  # variance 0.05^2 / 12
    y = S.unit_correlations(oracle, data)["y"]
    assert y["other"] < 0.2 and y["other_all"] > 0.99
    oracle.encode = with_unit(1.0)  # variance 1 / 12: active
    y = S.unit_correlations(oracle, data)["y"]
    assert y["other"] > 0.99 and y["other_unit"] == "z5"


def test_rotation_is_scored_on_the_harmonic_each_item_determines():
    """A read-out that turns every heart by a quarter turn loses the hearts' rotation: the per-item
    measure sees it (hearts are 1/3 of the items, each scoring cos 90 deg = 0), the common quarter-turn
    harmonic does not; a square off by a quarter turn is the same image and costs nothing."""
    data = load_data("shapes", n=3000)
    oracle = Oracle(data)
    encode = oracle.encode

    def quarter_off(x):
        z = encode(x)
        f = oracle._factors(x)
        return torch.cat([(z[:, :1] + 0.5 * (f[:, :1] != 1)), z[:, 1:]], 1)  # squares and hearts +90 deg

    oracle.encode = quarter_off
    rot = S.unit_correlations(oracle, data)["rotation"]
    assert rot["own_common"] > 0.99
    assert rot["own"] == pytest.approx(2 / 3, abs=0.05)
    by = rot["own_by_symmetry"]  # hearts (1) lost, ellipses (2) and squares (4) kept
    assert by["4"] > 0.97 and by["2"] > 0.97 and abs(by["1"]) < 0.1, by


def test_iou():
    a = torch.zeros(2, 1, 4, 4)
    b = a.clone()
    a[0, 0, :2], b[0, 0, 1:3] = 1, 1
    assert S.iou(a, b).tolist() == [pytest.approx(1 / 3), 1.0]  # two empty images match


# --- the command -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_transform_command(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["-q", "train", "dcign", "--data", "shapes", "--steps", "3", "--runs", str(runs), "--no-final",
                 "--set", "train.eval_every=0", "--set", "train.sample_every=0", "--set", "model.channels=8,16",
                 "--set", "train.eval_metrics=view_iou,unit_corr", "--set", "train.eval_n=50",
                 "--set", "train.batch_size=16"]) == 0
    (run,) = runs.iterdir()
    x = load_data("shapes").x[0]
    Image.fromarray(to_uint8(x)).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert main(["transform", str(run), str(tmp_path / "in.png"), "--rotate", "45", "-o", str(out)]) == 0
    assert Image.open(out).size == (32, 32)
    assert main(["transform", str(run), str(tmp_path / "in.png"), "--move", "0.2", "-0.1", "--compare",
                 "-o", str(tmp_path / "cmp.png")]) == 0
    # traverse sweeps a named unit over its factor's range: for rotation one whole turn, so the first and
    # last columns are the same picture and the middle one (half a turn; a 3-step model draws blobs) is not
    capsys.readouterr()
    assert main(["traverse", str(run), "--unit", "rotation", "-n", "2", "--steps", "5",
                 "-o", str(tmp_path / "t.png")]) == 0
    assert "unit 'rotation' from 0 to 2" in capsys.readouterr().out  # unit 2 = one turn (DCIGN.unit_value)
    grid = np.asarray(Image.open(tmp_path / "t.png").convert("L"), dtype=float)
    cell = grid.shape[1] // 5
    first, half, last = (grid[:, i * cell:(i + 1) * cell] for i in (0, 2, 4))
    assert np.abs(first - last).max() <= 1 and np.abs(first - half).max() > 5
    Image.fromarray(to_uint8(torch.zeros(1, 8, 8))).save(tmp_path / "small.png")  # resized to the model's size
    assert main(["transform", str(run), str(tmp_path / "small.png"), "--rotate", "45", "-o", str(out)]) == 0
    assert Image.open(out).size == (32, 32)
