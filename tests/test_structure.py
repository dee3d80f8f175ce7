"""Latent structure: clustering scores, the GMVAE, the balanced probe subset, `genlab cluster/probe`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genlab.models  # noqa: F401  (registration)
from genlab.cli import main
from genlab.config import RunConfig, TrainConfig
from genlab.data import DataSet
from genlab.evaluation.cluster_metrics import balanced_subset, cluster_acc, cluster_scores, kmeans, majority_acc
from genlab.losses import class_consistency
from genlab.models import build_model
from genlab.models.gmvae import GMVAEConfig
from genlab.nn.augment import label_preserving_view, random_affine

from conftest import blobs, info


# --- cluster scores ------------------------------------------------------------------------------
def test_permuted_perfect_assignment_scores_one():
    y = np.repeat(np.arange(5), 20)
    perm = np.array([3, 0, 4, 1, 2])
    assert cluster_acc(y, perm[y]) == 1.0
    s = cluster_scores(y, perm[y])
    assert s["nmi"] == pytest.approx(1.0) and s["ari"] == pytest.approx(1.0)


def test_constant_assignment_scores_one_over_k():
    y = np.repeat(np.arange(4), 25)
    assert cluster_acc(y, np.zeros_like(y)) == pytest.approx(0.25)
    assert cluster_scores(y, np.zeros_like(y))["ari"] == pytest.approx(0.0)


def test_hungarian_is_stricter_than_majority_vote():
    # two clusters are both mostly class 0: majority vote gives both to class 0, Hungarian cannot
    y = np.array([0, 0, 0, 1, 0, 0, 0, 1, 1, 1])
    p = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    assert majority_acc(y, p) == pytest.approx(0.8)
    assert cluster_acc(y, p) == pytest.approx(0.5)  # 3 (cluster 0 -> 0) + 2 (cluster 2 -> 1)
    assert cluster_acc(y, p) <= majority_acc(y, p)


def test_more_clusters_than_classes():
    y = np.array([0, 0, 1, 1])
    assert cluster_acc(y, np.array([0, 1, 2, 3])) == pytest.approx(0.5)


def test_kmeans_finds_separated_groups():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y = np.repeat(np.arange(3), 30)
    labels, found = kmeans(centres[y] + rng.normal(size=(90, 2)), 3, seed=0)
    assert found.shape == (3, 2) and cluster_acc(y, labels) == 1.0


# --- the balanced labelled subset ----------------------------------------------------------------
def test_balanced_subset_is_balanced_and_seeded():
    y = np.random.default_rng(0).integers(0, 10, 1000)
    a = balanced_subset(y, 100, seed=3)
    assert len(a) == 100 and len(set(a)) == 100
    assert (np.bincount(y[a], minlength=10) == 10).all()
    assert np.array_equal(a, balanced_subset(y, 100, seed=3))
    assert not np.array_equal(a, balanced_subset(y, 100, seed=4))
    for bad in (105, 5, 2000):
        with pytest.raises(ValueError):
            balanced_subset(y, bad, seed=0)


def digits_like(n: int) -> DataSet:
    """n random 1x12x12 images in [0, 1] (shapes and augmentations only care about the layout)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 1, 12, 12, generator=g) > 0.7).float()
    return DataSet(name="rand", kind="image", x=x, y=torch.arange(n) % 4,
                   splits={"train": torch.arange(n)}, num_classes=4)


# --- the GMVAE ------------------------------------------------------------------------------------
def gmvae(data, seed: int = 0, **kw):
    cfg = GMVAEConfig(**{"components": 4, "latent_dim": 4, "hidden": (64,), **kw})
    return build_model(RunConfig(model="gmvae", model_config=cfg, data_info=info(data),
                                 train=TrainConfig(seed=seed)))


def test_gmvae_loss_pieces_sum_to_the_loss():
    data = blobs(64)
    model = gmvae(data, balance=0.0, consistency=0.0)  # the ELBO of the paper, nothing added
    out = model.loss("main", {"x": data.x[:16]}, step=0)
    assert torch.allclose(out["loss"].detach(), out["recon"] + out["kl_z"] + out["kl_y"], atol=1e-4)
    assert out["kl_z"] >= 0 and out["kl_y"] >= 0
    # with the balance term, it is the one piece added to the ELBO
    model = gmvae(data, balance=0.5, consistency=0.0)
    torch.manual_seed(1)
    out = model.loss("main", {"x": data.x[:16]}, step=0)
    expected = out["recon"] + out["kl_z"] + out["kl_y"] + 0.5 * out["kl_y_marginal"]
    assert torch.allclose(out["loss"].detach(), expected, atol=1e-4)


def test_class_consistency_is_a_kl_to_a_fixed_target():
    a = torch.randn(6, 5, requires_grad=True)
    b = torch.randn(6, 5, requires_grad=True)
    assert torch.allclose(class_consistency(a, a.detach().clone()), torch.zeros(6), atol=1e-6)
    p, q = torch.softmax(a, 1), torch.softmax(b, 1)
    kl = class_consistency(a, b)
    assert torch.allclose(kl, (p * (p / q).log()).sum(1), atol=1e-5) and (kl > 0).all()
    kl.sum().backward()
    assert a.grad is None and b.grad.abs().sum() > 0  # only the view's posterior moves


def test_random_affine_keeps_the_image_and_identity_is_exact():
    x = digits_like(16).x
    same = random_affine(x, degrees=0, scale=0, shift=0)
    assert torch.allclose(same, x, atol=1e-5)
    big = torch.zeros(16, 1, 28, 28)
    big[:, :, 10:18, 9:19] = 1.0  # a block in the middle: small moves keep it inside the frame
    out = random_affine(big, generator=torch.Generator().manual_seed(0))
    assert out.shape == big.shape and out.min() >= 0 and out.max() <= 1 + 1e-6
    assert not torch.allclose(out, big, atol=1e-3)
    mass = out.sum((1, 2, 3)) / big.sum((1, 2, 3))
    assert ((mass > 0.75) & (mass < 1.3)).all()  # scale within 10%: area within ~21%


def test_gmvae_consistency_term_is_added_and_pulls_views_together():
    data = digits_like(32)
    model = gmvae(data, balance=0.5, consistency=2.0)
    out = model.loss("main", {"x": data.x}, step=0)
    expected = out["recon"] + out["kl_z"] + out["kl_y"] + 0.5 * out["kl_y_marginal"] + 2.0 * out["consistency"]
    assert torch.allclose(out["loss"].detach(), expected, atol=1e-4) and out["consistency"] > 0
    # a few steps on the term alone bring q(y|x') of fixed views x' towards q(y|x)
    view = label_preserving_view(data.x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.mul_(3.0)  # confident, disagreeing posteriors to start from

    def term():
        return class_consistency(model.class_logits(data.x), model.class_logits(view)).mean()  # scalar

    before = term().detach().item()
    opt = torch.optim.Adam(model.encoder.parameters(), lr=1e-3)
    for _ in range(30):
        loss = term()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before > 0.05 and term().detach().item() < 0.5 * before


def test_gmvae_cluster_probs_and_shapes():
    data = blobs(64)
    model = gmvae(data).eval()
    x = data.x[:8]
    probs = model.cluster_probs(x)
    assert probs.shape == (8, 4) and torch.allclose(probs.sum(1), torch.ones(8), atol=1e-5)
    assert model.encode(x).shape == (8, 4) and model.reconstruct(x).shape == x.shape
    assert model.sample(5, y=torch.full((5,), 2), generator=torch.Generator().manual_seed(0)).shape == (5, *data.shape)
    assert model.sample_groups == 4 and model.sample_with_latents(8)["component"].tolist() == [0, 1, 2, 3] * 2
    with torch.no_grad():
        x_bin = model.eval_targets(x, torch.Generator().manual_seed(0))
        elbo, iwae = model.elbo(x_bin), model.iwae_bound(x_bin, 50)
    assert elbo.shape == iwae.shape == (8,)
    assert iwae.mean() >= elbo.mean() - 1.0  # the IWAE bound is the tighter one (up to noise)


@pytest.mark.slow
def test_gmvae_clusters_easy_blobs():
    torch.manual_seed(0)
    data = blobs(400)
    model = gmvae(data)
    opt = model.phases()[0].make_optimizer(3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(400):  # measured: accuracy 1.0 after 200 steps (0.78 from another initial RNG state)
        idx = torch.randint(0, len(data.x), (64,), generator=g)
        out = model.loss("main", {"x": data.x[idx]}, step=step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    with torch.no_grad():
        pred = model.eval().cluster_probs(data.x).argmax(1)
    assert cluster_acc(data.y, pred) > 0.6  # chance is ~0.28 for 4 classes


# --- the CLI ----------------------------------------------------------------------------------------
FAST = ["--set", "train.eval_every=20", "--set", "train.eval_n=100", "--set", "train.sample_every=20",
        "--set", "model.hidden=32", "--set", "model.latent_dim=4", "--set", "train.batch_size=64"]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["-q", "train", "vae", "--data", "digits", "--steps", "40", "--runs", str(runs), *FAST,
                 "--no-final"]) == 0
    (run,) = runs.iterdir()
    return run


def _in_range(scores: dict) -> bool:
    return 0 <= scores["cluster_acc"] <= 1 and 0 <= scores["nmi"] <= 1 and -1 <= scores["ari"] <= 1


def test_cluster_command(vae_run, tmp_path, capsys):
    out, js = tmp_path / "c.png", tmp_path / "c.json"
    assert main(["cluster", str(vae_run), "--split", "test", "-o", str(out), "--json", str(js)]) == 0
    result = json.loads(js.read_text())
    assert set(result) == {"latent_kmeans", "pixel_kmeans", "info"}  # a vae has no cluster_probs
    assert _in_range(result["latent_kmeans"]) and _in_range(result["pixel_kmeans"])
    assert result["pixel_kmeans"]["cluster_acc"] > 0.3 and out.is_file()
    assert "Hungarian" in capsys.readouterr().out


def test_probe_command(vae_run, tmp_path, capsys):
    js = tmp_path / "p.json"
    assert main(["probe", str(vae_run), "--labels", "50", "--seed", "1", "--json", str(js)]) == 0
    result = json.loads(js.read_text())
    assert result["labels"] == 50 and result["seed"] == 1
    assert 0 <= result["latent"] <= 1 and result["pixels"] > 0.5
    capsys.readouterr()
    assert main(["probe", str(vae_run), "--labels", "55"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genlab: error:") and "\n" not in err


def test_cluster_gmvae_run_scores_its_own_clusters(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["-q", "train", "gmvae", "--data", "digits", "--steps", "20", "--runs", str(runs), *FAST,
                 "--no-final"]) == 0
    (run,) = runs.iterdir()
    js = tmp_path / "c.json"
    assert main(["cluster", str(run), "--k", "5", "-o", str(tmp_path / "c.png"), "--json", str(js)]) == 0
    result = json.loads(js.read_text())
    assert _in_range(result["model"]) and result["info"]["model_components"] == 10
    assert "clusters by itself" in capsys.readouterr().out
