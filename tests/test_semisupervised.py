"""Semi-supervised models (m2, cvae), the labels budget, analogies and the accuracy metric."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import genlab.models  # noqa: F401  (registration)
from genlab.cli import main
from genlab.config import RunConfig, TrainConfig
from genlab.data import Loader, batch_dict, load_data
from genlab.data.labels import labelled_train_indices, with_label_budget
from genlab.evaluation import evaluate
from genlab.latent import analogy_grid
from genlab.models import build_model
from genlab.models.cvae import CVAEConfig
from genlab.models.m2 import M2Config
from genlab.pictures.grids import save_image_grid
from genlab.registry import MODELS

from conftest import blobs, info

SMALL = {"latent_dim": 3, "hidden": (32,)}


def model(name: str, data, seed: int = 0, **kw):
    cfg = {"cvae": CVAEConfig, "m2": M2Config}[name](**{**SMALL, **kw})
    return build_model(RunConfig(model=name, model_config=cfg, data_info=info(data), train=TrainConfig(seed=seed)))


# --- the M2 objective ------------------------------------------------------------------------------
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_m2_with_every_label_is_a_cvae_plus_a_classifier_term(likelihood):
    data = blobs(64)
    m2 = model("m2", data, alpha=0.7, likelihood=likelihood, consistency=0.0)  # Kingma et al.'s M2
    cvae = model("cvae", data, likelihood=likelihood)
    missing, unexpected = cvae.load_state_dict(m2.state_dict(), strict=False)
    assert not missing and all(k.startswith("classifier.") for k in unexpected)
    batch = {"x": data.x[:16], "y": data.y[:16]}
    torch.manual_seed(5)
    out_m2 = m2.loss("main", batch, step=0)
    torch.manual_seed(5)
    out_cvae = cvae.loss("main", batch, step=0)
    ce = out_m2["ce"]  # -log q(y|x) of the (binarised, for bernoulli) training input
    if likelihood == "gaussian":
        assert torch.allclose(ce, torch.nn.functional.cross_entropy(m2.classify(batch["x"]), batch["y"]))
    assert torch.allclose(out_m2["loss"], out_cvae["loss"] + 0.7 * ce, atol=1e-4)
    assert torch.allclose(out_m2["nelbo"], out_cvae["nelbo"], atol=1e-4)


def test_m2_consistency_is_the_one_term_added_for_images():
    data = load_data("digits")
    plain = model("m2", data, consistency=0.0)
    with_term = model("m2", data, consistency=2.0)
    with_term.load_state_dict(plain.state_dict())
    y = data.y[:32].clone()
    y[::2] = -1  # half the labels hidden
    batch = {"x": data.x[:32], "y": y}
    torch.manual_seed(5)
    out0 = plain.loss("main", batch, step=0)
    torch.manual_seed(5)
    out2 = with_term.loss("main", batch, step=0)
    assert "consistency" not in out0 and out2["consistency"] > 0
    assert torch.allclose(out2["loss"], out0["loss"] + 2.0 * out2["consistency"], atol=1e-4)


def test_m2_unlabelled_term_enumerates_the_classes():
    """With hidden labels the generative term is sum_y q(y|x) L(x, y) - H(q(y|x)): checked on a model
    whose posterior has (almost) no noise, so that one z per class is the same z every time."""
    data = blobs(64)
    m2 = model("m2", data, likelihood="gaussian", consistency=0.0)
    with torch.no_grad():
        m2.z_head.bias[SMALL["latent_dim"]:] = -40.0  # log sigma^2 -> clamp at -12: z ~ mu
    x = data.x[:8]
    out = m2.loss("main", {"x": x, "y": torch.full((8,), -1)}, step=0)
    with torch.no_grad():
        q = torch.softmax(m2.classify(x), 1)  # (8, K)
        per_class = -m2.class_elbos(x, sample=False)  # (8, K): L(x, y)
        expected = (q * per_class).sum(1) + (q * q.log()).sum(1)
    assert torch.allclose(out["loss"], expected.mean(), rtol=1e-3)
    assert out["ce"] == 0


def test_cvae_needs_every_label():
    data = blobs(32)
    cvae = model("cvae", data)
    with pytest.raises(Exception, match="needs every training label"):
        cvae.loss("main", {"x": data.x[:4], "y": torch.tensor([0, -1, 2, 3])})


# --- the labels budget ------------------------------------------------------------------------------
def test_label_budget_is_balanced_reproducible_and_hides_the_rest():
    data = load_data("digits")
    a = labelled_train_indices(data, 50, seed=3)
    assert torch.equal(a, labelled_train_indices(data, 50, seed=3))
    assert not torch.equal(a, labelled_train_indices(data, 50, seed=4))
    assert (torch.bincount(data.y[a], minlength=10) == 5).all()
    assert set(a.tolist()) <= set(data.indices("train").tolist())
    view, chosen = with_label_budget(data, 50, seed=3, share=0.5)
    assert torch.equal(chosen, a) and torch.equal(view.y, data.y)  # evaluation still sees every label
    train = data.indices("train")
    y = batch_dict(view, train)["y"]
    shown = torch.isin(train, a)
    assert torch.equal(y[shown], data.y[train][shown]) and (y[~shown] == -1).all()
    val = data.indices("val")
    assert torch.equal(batch_dict(view, val)["y"], data.y[val])
    # half of what training draws is labelled, and the loader only draws train items
    assert torch.isin(view.train_plan, a).float().mean().item() == pytest.approx(0.5, abs=0.02)
    batch = next(iter(Loader(view, "train", batch_size=400, seed=0)))
    assert 0.35 < (batch["y"] >= 0).float().mean() < 0.65
    assert view.fingerprint() == data.fingerprint()  # same data, same cached feature nets
    natural, _ = with_label_budget(data, 50, seed=3, share=None)
    assert torch.equal(natural.train_plan, train)


# --- analogies --------------------------------------------------------------------------------------
def test_analogy_grid_keeps_z_and_changes_the_class():
    data = blobs(64)
    cvae = model("cvae", data).eval()
    x, y = data.x[:3], data.y[:3]
    grid = analogy_grid(cvae, x, y)
    assert grid.shape == (3, 1 + 4, *data.shape)
    assert torch.equal(grid[:, 0], x)
    with torch.no_grad():
        z = cvae.encode(x, y)
        assert torch.allclose(grid[1, 3], cvae.decode(z[1:2], torch.tensor([2]))[0])


# --- learning ---------------------------------------------------------------------------------------
def _train(net, data, steps: int, lr: float = 3e-3):
    opt = net.phases()[0].make_optimizer(lr)
    batches = iter(Loader(data, "train", batch_size=64, seed=0))
    net.train()
    for step in range(steps):
        out = net.loss("main", next(batches), step=step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return net.eval()


def _accuracy(net, data) -> float:
    return evaluate(net, data, split="test", metrics=["accuracy"])["values"]["accuracy"]


@pytest.mark.slow
def test_trained_m2_with_few_labels_classifies_better_than_untrained():
    data = load_data("digits")
    view, _ = with_label_budget(data, 50, seed=0)  # 5 labels per class
    m2 = model("m2", data, latent_dim=4, hidden=(64,))
    before = _accuracy(m2, data)
    after = _accuracy(_train(m2, view, 250), data)
    assert after > max(0.5, before + 0.3), (before, after)


def test_cvae_classifies_by_bayes_rule_and_its_bounds_are_ordered():
    data = blobs(240)
    cvae = _train(model("cvae", data, latent_dim=2), data, 150)
    assert _accuracy(cvae, data) > 0.9
    x = cvae.eval_targets(data.x[:64], torch.Generator().manual_seed(0))
    with torch.no_grad():
        elbo, iwae = cvae.elbo(x).mean(), cvae.iwae_bound(x, 30).mean()
    assert elbo <= iwae <= 0  # log p(x) >= IWAE_30 >= ELBO (binary pixels: log p(x) <= 0)


# --- the CLI ----------------------------------------------------------------------------------------
FAST = ["--set", "train.eval_every=15", "--set", "train.sample_every=15", "--set", "model.hidden=32",
        "--set", "model.latent_dim=4", "--set", "train.batch_size=64"]


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["-q", "train", "m2", "--data", "digits", "--labels", "30", "--label-seed", "2", "--steps", "30",
                 "--runs", str(runs), *FAST, "--no-final"]) == 0
    (run,) = runs.iterdir()
    return run


def test_train_m2_records_its_labels(m2_run):
    record = json.loads((m2_run / "labelled.json").read_text())
    expected = labelled_train_indices(load_data("digits"), 30, seed=2)
    assert record["labels"] == 30 and record["seed"] == 2 and record["per_class"] == [3] * 10
    assert record["indices"] == expected.tolist()
    config = json.loads((m2_run / "config.json").read_text())
    assert config["data"]["labels"] == 30 and config["data"]["label_seed"] == 2
    assert "accuracy" in (m2_run / "metrics.jsonl").read_text()  # logged on validation during training


def test_m2_run_evaluate_sample_and_analogies(m2_run, tmp_path):
    js = tmp_path / "m.json"
    assert main(["evaluate", str(m2_run), "--metrics", "accuracy,elbo,nll", "--nll-k", "20", "--json", str(js)]) == 0
    values = json.loads(js.read_text())["values"]
    assert 0 <= values["accuracy"] <= 1 and values["nll"] <= -values["elbo"] + 1e-3
    assert main(["sample", str(m2_run), "--label", "3", "-n", "5", "-o", str(tmp_path / "s.npz")]) == 0
    assert (__import__("numpy").load(tmp_path / "s.npz")["y"] == 3).all()
    out = tmp_path / "a.png"
    assert main(["analogies", str(m2_run), "-n", "4", "-o", str(out)]) == 0
    # a row per input, the input then one column per class: the grid of a (4, 11) batch
    like = save_image_grid(torch.zeros(4 * 11, 1, 8, 8), tmp_path / "like.png", 11)
    assert Image.open(out).size == Image.open(like).size


def _one_line_error(capsys, argv, expected: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"genlab: error: {expected}"


def test_labels_budget_for_a_model_that_cannot_use_it(tmp_path, capsys):
    _one_line_error(capsys, ["-q", "train", "vae", "--data", "digits", "--labels", "30", "--steps", "1",
                             "--runs", str(tmp_path)],
                    "--labels 30: a 'vae' model does not learn from partly labelled data (these do: m2)")
    assert not any(tmp_path.iterdir())  # no run folder left behind


@pytest.mark.skipif("gan" not in MODELS, reason="no gan model registered")
def test_analogies_and_cluster_of_an_encoderless_model_are_one_line_errors(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["-q", "train", "gan", "--data", "digits", "--steps", "2", "--runs", str(runs),
                 "--set", "train.eval_every=0", "--set", "train.sample_every=0", "--no-final"]) == 0
    (run,) = runs.iterdir()
    _one_line_error(capsys, ["analogies", str(run), "-o", str(tmp_path / "a.png")],
                    "a 'gan' model has no encoder, so it cannot make analogies")
    _one_line_error(capsys, ["cluster", str(run), "-o", str(tmp_path / "c.png")],
                    "a 'gan' model has no encoder, so it cannot cluster")


def test_analogies_of_an_unconditional_model_is_a_one_line_error(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["-q", "train", "vae", "--data", "digits", "--steps", "2", "--runs", str(runs), *FAST,
                 "--no-final"]) == 0
    (run,) = runs.iterdir()
    _one_line_error(capsys, ["analogies", str(run), "-o", str(tmp_path / "a.png")],
                    "a 'vae' model is not class-conditional, so it cannot make analogies (cvae and m2 are)")
