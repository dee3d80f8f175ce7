"""StackGAN and its captions: the grammars, parsing and its errors, digit measures, conditions from
batches and from the caller, samples that honour the caption, and ``genlab sample --caption``."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import genlab.models  # noqa: F401  (registration)
from genlab import losses
from genlab.api.training import make_trainer
from genlab.cli import main
from genlab.config import DataInfo, RunConfig, TrainConfig
from genlab.data import load_data
from genlab.data.captions import (
    DIGITS,
    SHAPES,
    caption_for,
    digit_measures,
    digit_values,
    grammar_for,
    labels_grammar,
    shape_values,
)
from genlab.errors import GenlabError
from genlab.models import build_model
from genlab.registry import MODELS
from genlab.runs import new_run

QUICK = TrainConfig(batch_size=64, eval_every=0, sample_every=0, checkpoint_every=0, log_every=1000,
                    eval_metrics=(), threads=1)


def data_info(data) -> DataInfo:
    return DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes,
                    class_names=tuple(data.class_names))


def stackgan(data, **fields):
    cfg = MODELS.get("stackgan").Config(**{"latent_dim": 8, "hidden": (32,), "channels": (8, 16), **fields})
    return build_model(RunConfig(model="stackgan", model_config=cfg, data_info=data_info(data)))


# --- captions ----------------------------------------------------------------------------------------
def test_shapes_captions_follow_the_factors_and_parse_back():
    # shape, scale, rotation, x, y: a square turned by a quarter turn looks upright, an eighth does not
    factors = torch.tensor([[0, 0.6, math.pi / 2, 0.2, 0.1], [0, 0.9, math.pi / 4, 0.7, 0.8],
                            [1, 0.8, math.pi, 0.3, 0.9], [2, 0.5, math.pi, 0.6, 0.4]])
    assert caption_for(factors) == ["a small square, upright, top left", "a large square, rotated, bottom right",
                                    "a large ellipse, upright, bottom left", "a small heart, rotated, top right"]
    factors = load_data("shapes", n=50).factors
    for text, ids in zip(caption_for(factors), SHAPES.ids(shape_values(factors)), strict=True):
        assert SHAPES.parse(text).tolist() == ids.tolist() and SHAPES.caption(ids) == text


def test_captions_parse_with_open_slots_and_variants():
    ids = SHAPES.parse("A large square at the bottom right")
    assert SHAPES.caption(ids) == "a large square, bottom right"
    assert (ids == 0).tolist() == [False, False, True, False, False]  # rotation left open
    assert SHAPES.parse("a big square, bottom-right").tolist() == ids.tolist()  # alias, hyphen
    assert DIGITS.caption(DIGITS.parse("a thick, left slanted 7")) == "a thick, left-slanted seven"
    assert DIGITS.caption(DIGITS.parse("an upright one")) == "an upright one"
    assert SHAPES.caption(SHAPES.parse("the")) == "anything"


def test_an_unknown_word_names_the_word_and_the_vocabulary():
    with pytest.raises(GenlabError, match=r"unknown word 'hexagon'.*small, large, square, ellipse, heart"):
        SHAPES.parse("a small hexagon")
    with pytest.raises(GenlabError, match="size twice: 'small' and 'large'"):
        SHAPES.parse("a small large heart")
    with pytest.raises(GenlabError, match="unknown word 'heart'.*zero, one"):
        DIGITS.parse("a thick heart")


def test_grammar_follows_the_data():
    assert grammar_for("auto", kind="image", num_classes=3, class_names=("square", "ellipse", "heart")) is SHAPES
    assert grammar_for("auto", kind="image", num_classes=10, class_names=tuple("0123456789")) is DIGITS
    assert grammar_for("auto", kind="points", num_classes=2, class_names=None).vocabulary == ("class0", "class1")
    assert labels_grammar(2, ("Cat", "dog")).vocabulary == ("cat", "dog")
    assert labels_grammar(2, ("a", "dog")).vocabulary == ("class0", "class1")  # "a" is an article
    with pytest.raises(GenlabError, match="labelled"):
        grammar_for("auto", kind="image", num_classes=None, class_names=None)
    with pytest.raises(GenlabError, match="does not fit"):
        grammar_for("shapes", kind="image", num_classes=10, class_names=None)


def stroke(top_col: float, bottom_col: float, width: int) -> torch.Tensor:
    """A straight stroke from row 4 to row 23 of a 28x28 image, (1, 28, 28)."""
    img = torch.zeros(1, 28, 28)
    for r in range(4, 24):
        c = round(top_col + (bottom_col - top_col) * (r - 4) / 19)
        img[0, r, c - width // 2:c - width // 2 + width] = 1
    return img


def test_digit_measures_see_width_and_slant():
    x = torch.stack([stroke(10, 18, 2), stroke(10, 18, 5), stroke(18, 10, 2), stroke(14, 14, 2)])
    width, slant = digit_measures(x)
    assert width[1] > 2 * width[0] and width[3] == pytest.approx(2 / 28, rel=0.1)  # 2A/P of a 2 x 20 bar
    assert slant[0] == pytest.approx(-8 / 19, abs=0.05) and slant[2] == pytest.approx(8 / 19, abs=0.05)
    values = digit_values(x, torch.tensor([1, 1, 7, 7]), torch.tensor([0.07, 0.09]))
    assert [DIGITS.caption(r) for r in DIGITS.ids(values)] == [
        "a thin, left-slanted one", "a thick, left-slanted one", "a thin, right-slanted seven", "a thin, upright seven"]


# --- conditions ------------------------------------------------------------------------------------
def test_batch_conditions_come_from_the_factors_and_drop_words_only_in_training():
    data = load_data("shapes", n=200, image_size=12)
    model = stackgan(data, word_dropout=0.5)
    batch = {"x": data.x[:100], "y": data.y[:100], "factors": data.factors[:100]}
    model.eval()
    full = model.batch_conditions(batch)
    assert [SHAPES.caption(r) for r in full[:5]] == caption_for(data.factors[:5])
    model.train()
    dropped = model.batch_conditions(batch)
    open_share = (dropped == 0).float().mean().item()
    assert 0.35 < open_share < 0.65 and ((dropped == full) | (dropped == 0)).all()
    with pytest.raises(GenlabError, match="factors"):
        model.batch_conditions({"x": data.x[:4], "y": data.y[:4]})


def test_digit_width_bins_track_the_data():
    data = load_data("digits")
    model = stackgan(data)
    assert torch.isnan(model.width_edges).all()
    batch = {"x": data.x[:256], "y": data.y[:256]}
    model.train().batch_conditions(batch)
    width, _ = digit_measures(data.x[:256])
    assert torch.allclose(model.width_edges, width.quantile(torch.tensor([1 / 3, 2 / 3])))


def test_sample_takes_labels_captions_and_ids():
    data = load_data("shapes", n=60, image_size=12)
    model = stackgan(data).eval()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    by_text = model.sample_with_latents(3, y="a small heart, top left", generator=g())
    assert by_text["y"].tolist() == [SHAPES.parse("a small heart, top left").tolist()] * 3
    assert by_text["x"].shape == (3, 1, 12, 12) and by_text["stage1"].shape == (3, 1, 6, 6)
    by_ids = model.sample(3, y=model.parse_caption("a small heart, top left")[None], generator=g())
    assert torch.equal(by_ids, by_text["x"])
    assert model.sample_with_latents(4)["y"].tolist() == SHAPES.from_labels(torch.tensor([0, 1, 2, 0])).tolist()
    both = model.sample_with_latents(2, y=["a square", "an ellipse"])["y"]
    assert [SHAPES.caption(r) for r in both] == ["a square", "an ellipse"]
    with pytest.raises(GenlabError, match=r"0\.\.2"):
        model.sample(2, y=torch.tensor([0, 3]))
    with pytest.raises(GenlabError, match="slots"):
        model.sample(1, y=torch.tensor([[1, 1, 0, 0, 0]]))  # "small" in the shape slot


@pytest.mark.slow
def test_samples_honour_the_caption(tmp_path):
    """250 steps on 12x12 shapes: the ink's centre lands in the captioned quadrant (measured 98%; chance 25%)."""
    data = load_data("shapes", n=2000, image_size=12)
    cls = MODELS.get("stackgan")
    cfg = RunConfig(model="stackgan", model_config=cls.Config(latent_dim=8, hidden=(64,), channels=(16, 32),
                                                              embed_dim=32, cond_dim=8, lr_g=1e-3, lr_d=1e-3),
                    train=replace(QUICK, steps=250), data_info=data_info(data))
    run = new_run(tmp_path, "stackgan", "shapes")
    run.write_config(cfg)
    trainer = make_trainer(build_model(cfg), data, run, cfg.train, progress=False)
    trainer.fit()
    corners = ["top left", "top right", "bottom left", "bottom right"]
    want = torch.arange(200) % 4
    captions = [f"a {corners[k]}" for k in want]
    x = trainer.model.eval().sample(200, y=captions, generator=torch.Generator().manual_seed(0))
    ink = x.mean(1)  # (200, 12, 12)
    grid = (torch.arange(12) + 0.5) / 12
    mass = ink.sum((1, 2)).clamp_min(1e-6)
    cx, cy = (ink.sum(1) * grid).sum(1) / mass, (ink.sum(2) * grid).sum(1) / mass
    got = (cy >= 0.5).long() * 2 + (cx >= 0.5).long()
    assert (got == want).float().mean() > 0.8


# --- the auxiliary classifier (AC-GAN on captions) ----------------------------------------------------
def test_caption_classification_is_a_cross_entropy_per_given_slot():
    sizes = (2, 3)  # two slots: words 1-2 and 3-5
    logits = torch.tensor([[2.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 3.0]])
    ids = torch.tensor([[1, 4], [0, 5]])  # the second caption leaves slot 0 open
    want = (F.cross_entropy(logits[:1, :2], torch.tensor([0]), reduction="sum")
            + F.cross_entropy(logits[:, 2:], torch.tensor([1, 2]), reduction="sum")) / 2  # per caption
    assert losses.caption_classification(logits, ids, sizes).item() == pytest.approx(want.item())
    # naming the captioned word costs less than naming another: the sign G is pushed by
    wrong = torch.tensor([[2, 3], [0, 3]])
    assert losses.caption_classification(logits, ids, sizes) < losses.caption_classification(logits, wrong, sizes)
    assert losses.caption_classification(logits, torch.zeros(2, 2, dtype=torch.long), sizes).item() == 0.0


def test_auxiliary_terms_are_in_both_phases_with_their_weight():
    data = load_data("shapes", n=100, image_size=12)
    model = stackgan(data).eval()  # eval: no word dropout, frozen BatchNorm and spectral-norm estimates
    batch = {"x": data.x[:32], "y": data.y[:32], "factors": data.factors[:32]}

    def losses_with(weight):
        model.config = replace(model.config, aux_weight=weight)
        torch.manual_seed(0)
        return model.loss("critic", batch), model.loss("generator", batch)

    (d0, g0), (d2, g2) = losses_with(0.0), losses_with(2.0)
    assert "aux" not in g0 and "d1_aux" not in d0
    assert d2["loss"].item() == pytest.approx(d0["loss"].item() + 2 * (d2["d1_aux"] + d2["d2_aux"]).item(), rel=1e-5)
    assert g2["loss"].item() == pytest.approx(g0["loss"].item() + 2 * g2["aux"].item(), rel=1e-5)
    # the heads are in the graph of both phases only with a weight (the generator's phase: through G's images)
    for out, has in ((d0, False), (g0, False), (d2, True), (g2, True)):
        model.zero_grad(set_to_none=True)
        out["loss"].backward()
        grads = [c.classify.parametrizations.weight.original.grad for c in (model.d1, model.d2)]
        assert all((g is not None and g.abs().sum() > 0) == has for g in grads)


# --- the command line -------------------------------------------------------------------------------
def test_cli_caption(tmp_path, capsys):
    fast = ["--steps", "2", "--no-final", "--runs", str(tmp_path), "--set", "model.hidden=8",
            "--set", "model.channels=4,8", "--set", "train.eval_every=0", "--set", "train.sample_every=0",
            "--set", "train.eval_metrics=modes"]
    assert main(["-q", "train", "stackgan", "--data", "digits", *fast]) == 0
    (run,) = tmp_path.iterdir()
    out = tmp_path / "s.npz"
    assert main(["sample", str(run), "-n", "4", "--caption", "a thick, left-slanted seven", "-o", str(out)]) == 0
    drawn = np.load(out)
    assert drawn["y"].tolist() == [DIGITS.parse("a thick, left-slanted seven").tolist()] * 4
    assert drawn["x"].shape == (4, 1, 8, 8) and drawn["stage1"].shape == (4, 1, 4, 4)
    assert main(["sample", str(run), "-n", "6", "--caption", "a seven", "-o", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--caption", "a thick hexagon", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'hexagon'" in err and "left-slanted" in err
    assert main(["sample", str(run), "--caption", "a seven", "--label", "7", "-o", str(tmp_path / "x.png")]) == 2
    assert "not both" in capsys.readouterr().err
