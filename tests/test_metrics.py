"""Evaluation: each metric against its definition, the feature-net cache, and ``evaluate`` end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genlab.nn.features as features_mod
from genlab.data.base import DataSet
from genlab.errors import GenlabError
from genlab.evaluation import (
    clear_memo,
    density_coverage,
    evaluate,
    feature_extractor,
    format_table,
    frechet_distance,
    frechet_distance_from_stats,
    inception_score,
    kernel_inception_distance,
    precision_recall,
    psnr,
)
from genlab.registry import METRICS

from conftest import blobs

SAMPLE_KEYS = {"fd", "kid", "precision", "recall", "density", "coverage", "is"}


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def mixture(n: int, seed: int, modes: int = 4) -> torch.Tensor:
    """n points (n, 2) from `modes` well separated blobs on a circle of radius 5."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.randint(0, modes, (n,), generator=g) * (2 * math.pi / modes)
    centres = 5 * torch.stack([angle.cos(), angle.sin()], 1)
    return (centres + 0.3 * torch.randn(n, 2, generator=g)).double()


# --- Fréchet distance ------------------------------------------------------------------------------
def test_frechet_distance_zero_on_itself_and_grows_with_noise():
    mix = torch.randn(16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = gaussian(2000, 16, 0) @ mix  # correlated features
    scale = torch.cov(a.T).trace().item()
    assert frechet_distance(a, a) < 1e-6 * scale
    noise = gaussian(2000, 16, 2)
    fds = [frechet_distance(a, a + s * noise) for s in (0.1, 0.3, 1.0, 3.0)]
    assert all(x < y for x, y in zip(fds, fds[1:], strict=False)), fds


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    d = 4
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a1, a2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a1 @ a1.T + 0.1 * np.eye(d), a2 @ a2.T + 0.1 * np.eye(d)  # non-commuting covariances
    # closed form: Tr (S1 S2)^½ = Tr (S1^½ S2 S1^½)^½, computed with symmetric eigendecompositions
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T
    tr_covmean = np.sqrt(np.linalg.eigvalsh(r1 @ s2 @ r1)).sum()
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2) - 2 * tr_covmean
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    # and from samples of the two Gaussians
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.03)


def test_frechet_distance_survives_singular_covariances():
    a = gaussian(50, 100, 0)  # fewer samples than dimensions: singular covariance
    assert math.isfinite(frechet_distance(a, gaussian(50, 100, 1)))


# --- KID -------------------------------------------------------------------------------------------
def test_kid_near_zero_for_one_distribution_positive_when_shifted():
    a, b = gaussian(600, 8, 0), gaussian(600, 8, 1)
    same, shifted = kernel_inception_distance(a, b), kernel_inception_distance(a, gaussian(600, 8, 1, 0.5))
    assert abs(same) < 0.02 and shifted > 10 * abs(same) and shifted > 0.1


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    a, b = gaussian(40, 5, 0), gaussian(30, 5, 1, 0.3)
    k = lambda x, y: (x @ y.T / 5 + 1) ** 3  # noqa: E731
    m = 30  # one subset of 30 from each: all of b, a random 30 of a; average over many subsets
    ref = []
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        i, j = torch.randperm(40, generator=g)[:m], torch.randperm(30, generator=g)[:m]
        x, y = a[i], b[j]
        kxx, kyy = k(x, x), k(y, y)
        within = ((kxx.sum() - kxx.trace()) + (kyy.sum() - kyy.trace())) / (m * (m - 1))
        ref.append(within - 2 * k(x, y).mean())
    got = kernel_inception_distance(a, b, subsets=2, subset_size=m, seed=0)
    assert got == pytest.approx(float(sum(ref) / 2), rel=1e-10)


# --- precision / recall ----------------------------------------------------------------------------
def test_precision_recall_identical_shifted_and_mode_collapse():
    real = mixture(1000, 0)
    same = precision_recall(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    fresh = precision_recall(real, mixture(1000, 1))
    assert fresh["precision"] > 0.9 and fresh["recall"] > 0.9
    shifted = precision_recall(real, mixture(1000, 1) + 1.5)  # samples off the data manifold
    assert shifted["precision"] < 0.3
    collapsed = mixture(4000, 2)
    collapsed = collapsed[collapsed[:, 0] > 2.5][:1000]  # every sample from one of the 4 modes
    mc = precision_recall(real, collapsed)
    assert mc["precision"] > 0.9 and mc["recall"] < 0.35  # realistic samples, missing variety


# --- density / coverage ----------------------------------------------------------------------------
def brute_density_coverage(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Naeem et al. 2020 written out with full float64 distance matrices."""
    d_rr = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    d_rf = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1))  # (N, M)
    radius = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    density = (d_rf <= radius[:, None]).sum(0).mean() / k
    coverage = (d_rf.min(1) <= radius).mean()
    return {"density": float(density), "coverage": float(coverage)}


def test_density_coverage_matches_brute_force():
    real, fake = gaussian(300, 20, 0).numpy(), gaussian(250, 20, 1, 0.2).numpy()
    got = density_coverage(real, fake, k=5)
    ref = brute_density_coverage(real, fake, 5)
    assert got["density"] == pytest.approx(ref["density"], abs=1e-12)
    assert got["coverage"] == pytest.approx(ref["coverage"], abs=1e-12)
    # and in float32 through the chunked path
    features_chunk = density_coverage(torch.from_numpy(real).float(), torch.from_numpy(fake).float(), k=5)
    assert features_chunk["coverage"] == pytest.approx(ref["coverage"], abs=1 / 300)


@pytest.mark.slow
def test_density_coverage_near_published_values():
    """prdc README: two N(0, I) sets, 10k each, 1000-d, k=5 -> density ~1.06, coverage ~0.97.

    Coverage is ~1 - 2^-5 = 0.97 whatever the dimension (Naeem et al., Lemma 2); density's expected
    value is 1 and it varies by a few percent between draws (seeds 0-3 give 0.96-1.07 here).
    """
    a, b = gaussian(10_000, 1000, 0).float(), gaussian(10_000, 1000, 1).float()
    got = density_coverage(a, b, k=5)
    assert 0.95 < got["coverage"] < 0.99
    assert 0.9 < got["density"] < 1.15


# --- Inception score, PSNR -------------------------------------------------------------------------
def test_inception_score_bounds():
    k = 10
    assert inception_score(torch.full((500, k), 1 / k)) == pytest.approx(1.0)
    assert inception_score(torch.eye(k)[torch.randint(0, k, (1,))].repeat(500, 1)) == pytest.approx(1.0)
    confident = torch.eye(k)[torch.arange(1000) % k]  # (1000, K) one-hot, evenly spread
    assert inception_score(confident, splits=1) == pytest.approx(k)
    assert inception_score(confident, splits=10, shuffle=False) == pytest.approx(k)
    assert 9 < inception_score(confident) <= k  # shuffled splits are nearly even


def test_psnr():
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(0.0) == math.inf


# --- feature networks ------------------------------------------------------------------------------
def digits() -> DataSet:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return DataSet(name="digits-test", kind="image", x=x, y=y, num_classes=10,
                   splits={"train": idx[:1197], "val": idx[1197:1497], "test": idx[1497:]})


@pytest.fixture(scope="module")
def digits_data() -> DataSet:
    return digits()


@pytest.mark.slow
def test_feature_net_on_digits(digits_data):
    fx = feature_extractor(digits_data)
    assert fx.kind == "classifier" and fx.test_accuracy > 0.9
    x, _ = digits_data.tensors("test")
    f, p = fx.features(x), fx.probs(x)
    assert f.shape == (len(x), fx.num_features) == (300, 128)
    assert torch.allclose(p.sum(1), torch.ones(len(x)), atol=1e-5)
    with pytest.raises(GenlabError):
        fx.features(torch.zeros(2, 1, 9, 9))


@pytest.fixture
def short_training(monkeypatch):
    """Feature nets trained for 30 steps: enough to test plumbing, not quality."""
    monkeypatch.setattr(features_mod, "MIN_STEPS", 30)
    monkeypatch.setattr(features_mod, "MAX_STEPS", 30)


@pytest.mark.slow
def test_unlabelled_images_get_an_autoencoder_and_points_identity(tmp_path, short_training):
    data = blobs(120)
    data.y, data.num_classes = None, None
    fx = feature_extractor(data, cache_dir=tmp_path)
    assert fx.kind == "autoencoder" and fx.test_accuracy is None and fx.probs(data.x[:4]) is None
    assert fx.features(data.x[:4]).shape == (4, 128)
    pts = DataSet(name="p", kind="points", x=torch.randn(50, 2), splits={"train": torch.arange(50)})
    ident = feature_extractor(pts)
    assert ident.kind == "identity" and torch.equal(ident.features(pts.x), pts.x)


@pytest.mark.slow
def test_feature_net_cache(tmp_path, monkeypatch, short_training):
    data = blobs(160, seed=5)
    first = feature_extractor(data, cache_dir=tmp_path)
    files = list(tmp_path.glob("features-*.pt"))
    assert len(files) == 1 and first.test_accuracy is not None
    assert feature_extractor(data, cache_dir=tmp_path) is first  # in-process memo
    clear_memo()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached network should have been loaded")

    with monkeypatch.context() as patch:
        patch.setattr(features_mod, "train_feature_net", no_training)
        second = feature_extractor(data, cache_dir=tmp_path)  # from disk
    assert second is not first and second.test_accuracy == first.test_accuracy
    assert torch.equal(second.features(data.x[:8]), first.features(data.x[:8]))

    files[0].write_bytes(b"not a checkpoint")  # corrupt: retrained and rewritten, not a crash
    clear_memo()
    third = feature_extractor(data, cache_dir=tmp_path)
    assert torch.allclose(third.features(data.x[:8]), first.features(data.x[:8]), atol=1e-4)  # seeded
    clear_memo()
    monkeypatch.setattr(features_mod, "train_feature_net", no_training)
    feature_extractor(data, cache_dir=tmp_path)  # the rewritten file loads
    assert not list(tmp_path.glob("*.tmp"))


# --- evaluate --------------------------------------------------------------------------------------
class Replay(torch.nn.Module):
    """A 'generator' that replays images from a pool (real held-out images, or noise)."""

    def __init__(self, pool: torch.Tensor):
        super().__init__()
        self.pool, self.dummy = pool, torch.nn.Parameter(torch.zeros(1))

    def sample(self, n, *, y=None, generator=None):
        reps = math.ceil(n / len(self.pool))
        idx = torch.cat([torch.randperm(len(self.pool), generator=generator) for _ in range(reps)])
        return self.pool[idx[:n]]


class Factorised(Replay):
    """Independent Bernoulli pixels: log p(x) is exact; the bounds sit 1 and 1/k nats below it."""

    def __init__(self, pool: torch.Tensor):
        super().__init__(pool)
        self.p = pool.mean(0).clamp(0.05, 0.95)  # (C, H, W)
        self.batches: list[torch.Tensor] = []

    def log_p(self, x):
        return torch.distributions.Bernoulli(probs=self.p).log_prob(x).flatten(1).sum(1)  # (N,)

    def eval_targets(self, x, generator=None):
        return torch.bernoulli(x, generator=generator)

    def reconstruct(self, x):
        return self.p.expand_as(x)

    def elbo(self, x):
        return self.log_p(x) - 1.0

    def iwae_bound(self, x, k):
        self.batches.append(x)
        return self.log_p(x) - 1.0 / k


def test_evaluate_real_replay_beats_noise_and_sits_near_the_floor(digits_data):
    val, _ = digits_data.tensors("val")
    good = evaluate(Replay(val), digits_data, batch_size=128)
    noise_images = torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = evaluate(Replay(noise_images), digits_data)
    assert set(good["values"]) == SAMPLE_KEYS | {"sharpness"} and set(good["floor"]) == SAMPLE_KEYS
    assert good["values"]["sharpness"] == pytest.approx(1.0, abs=0.1)  # real images are as sharp as real images
    v, fl = good["values"], good["floor"]
    assert good["info"]["n"] == 300 and good["info"]["feature_net_accuracy"] > 0.9
    assert v["fd"] < 2 * fl["fd"] and noise["values"]["fd"] > 20 * v["fd"]
    # 8x8 digits are blurry enough that some noise lands inside the real k-NN balls: precision is
    # fooled by large balls around real outliers, density much less (Naeem et al. 2020)
    assert noise["values"]["precision"] < v["precision"] - 0.3
    assert noise["values"]["density"] < 0.3 < 0.7 < v["density"]
    assert noise["values"]["coverage"] < 0.3 < 0.7 < v["coverage"]
    assert v["is"] > 3 * noise["values"]["is"]
    assert evaluate(Replay(val), digits_data, batch_size=128)["values"] == v  # deterministic
    table = format_table(good)
    assert all(k in table for k in SAMPLE_KEYS) and "↓" in table and "↑" in table


def test_evaluate_likelihood_keys_only_with_the_capability(digits_data):
    val, _ = digits_data.tensors("val")
    plain = evaluate(Replay(val), digits_data, metrics=["fd", "elbo", "nll", "recon_mse"])
    assert set(plain["values"]) == {"fd"} and set(plain["info"]["skipped"]) == {"elbo", "nll", "recon_mse"}
    model = Factorised(val)
    state = torch.random.get_rng_state()
    r = evaluate(model, digits_data, metrics=["elbo", "nll", "recon_mse", "psnr"], nll_k=10)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    v = r["values"]
    assert set(v) == {"elbo", "nll", "recon_mse", "psnr"} and r["floor"] == {}
    assert -v["elbo"] - v["nll"] == pytest.approx(1 - 1 / 10)  # same binarised targets for both
    assert max(len(b) for b in model.batches) <= 50
    assert all(((b == 0) | (b == 1)).all() for b in model.batches)
    assert v["psnr"] == pytest.approx(10 * math.log10(1 / v["recon_mse"]))
    assert r["info"]["nll_k"] == 10 and r["info"]["n_model"] == 300
    assert evaluate(model, digits_data, metrics=["elbo", "nll"], nll_k=10)["values"] == \
        {k: v[k] for k in ("elbo", "nll")}  # deterministic given the seed
    everything = evaluate(Factorised(val), digits_data, n=100)
    assert set(everything["values"]) == SAMPLE_KEYS | {"sharpness", "recon_mse", "psnr", "elbo", "nll"}
    with pytest.raises(GenlabError):
        evaluate(model, digits_data, metrics=["fid"])


def test_evaluate_points_uses_the_coordinates(point_data):
    test, _ = point_data.tensors("test")
    r = evaluate(Replay(test), point_data)
    assert set(r["values"]) == SAMPLE_KEYS - {"is"} and r["info"]["feature_net"] == "identity"
    far = evaluate(Replay(test + 3.0), point_data)
    assert far["values"]["fd"] > 10 > r["values"]["fd"] and far["values"]["precision"] == 0.0


def test_registry_entries():
    for name in SAMPLE_KEYS | {"recon_mse", "psnr", "elbo", "nll"}:
        m = METRICS.get(name)
        assert m.name == name and m.help and isinstance(m.higher_is_better, bool)
    assert not METRICS.get("fd").higher_is_better and METRICS.get("elbo").higher_is_better


def test_no_feature_network_is_trained_without_a_sample_metric(tmp_path, monkeypatch):
    """Likelihood and reconstruction metrics need no feature network: none is trained or cached."""
    from conftest import blobs
    from test_models import tiny

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "fresh-cache"))
    data = blobs(64)
    result = evaluate(tiny("vae", data), data, metrics=["elbo", "recon_mse"])
    assert set(result["values"]) == {"elbo", "recon_mse"} and "feature_net" not in result["info"]
    assert not (tmp_path / "fresh-cache").exists()


@pytest.mark.slow
@pytest.mark.parametrize("val_items", [1, 2, 5])
def test_metrics_a_small_split_cannot_give_are_skipped_with_the_minimum(digits_data, val_items):
    """A user's 20 photos hold one val image: FD needs 2, precision/recall 4, density/coverage 6.
    Those are skipped with the reason (never a crash); the others are computed."""
    small = DataSet(name="small", kind="image", x=digits_data.x, y=digits_data.y, num_classes=10,
                    splits={**digits_data.splits, "val": digits_data.splits["val"][:val_items]})
    model = Factorised(small.tensors("val")[0])
    r = evaluate(model, small, split="val", nll_k=2)
    needs = {"fd": 2, "kid": 2, "precision": 4, "recall": 4, "density": 6, "coverage": 6}
    too_few = {k for k, m in needs.items() if val_items < m}
    assert too_few.isdisjoint(r["values"]) and too_few.isdisjoint(r["floor"])
    assert set(needs) - too_few <= set(r["values"]) and {"is", "elbo", "recon_mse"} <= set(r["values"])
    for name in too_few:
        assert r["info"]["skipped"][name] == f"needs at least {needs[name]} items, the val split gives {val_items}"
    table = format_table(r)
    assert all(f"skipped {name}: needs at least {needs[name]} items" in table for name in too_few)
    assert "does not apply" not in table
