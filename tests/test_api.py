"""The Python API: ``genlab.train`` on specs, DataSets and in-memory arrays, a run's model and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genlab
from genlab.errors import GenlabError

from conftest import blobs, points

QUICK = {"train.eval_every": 0, "train.sample_every": 0, "train.checkpoint_every": 0, "train.eval_metrics": "elbo",
         "model.hidden": (16,), "model.latent_dim": 2, "train.batch_size": 16}


@pytest.mark.slow
def test_train_on_in_memory_uint8_images_with_labels(tmp_path):
    g = np.random.default_rng(0)
    x = (g.random((60, 12, 12)) * 255).astype(np.uint8)  # (N, H, W) uint8
    y = np.arange(60) % 3
    run = genlab.train("vae", data=(x, y), steps=3, runs=tmp_path, overrides=QUICK, progress=False, final=False)
    assert isinstance(run, genlab.Run) and (run.path / "data.npz").is_file()
    config = run.config
    assert config.data.spec == f"npz:{(run.path / 'data.npz').resolve()}"
    assert config.data_info.shape == (1, 12, 12) and config.data_info.num_classes == 3
    model = genlab.open_run(run.path).load(which="last")
    samples = model.sample(5)
    assert samples.shape == (5, 1, 12, 12) and 0 <= samples.min() and samples.max() <= 1
    data = run.data()  # the kept arrays, read back by the npz loader
    assert torch.allclose(data.x[:, 0], torch.from_numpy(x).float() / 255)


def test_train_on_points_tensor_and_on_a_dataset(tmp_path):
    pts = torch.randn(80, 2)
    run = genlab.train("gan", data=pts, steps=2, runs=tmp_path, overrides={"train.eval_metrics": "elbo"},
                       progress=False, final=False)
    assert run.config.data_info.kind == "points"
    run = genlab.train("ae", data=blobs(64), steps=2, runs=tmp_path / "b", overrides=QUICK, progress=False,
                       final=False)
    assert run.config.data.spec == "blobs" and run.load(which="last").sample(3).shape == (3, 1, 12, 12)


def test_evaluate_a_model_on_a_dataset_gives_values_and_floors():
    from genlab.config import RunConfig
    from genlab.models import build_model
    from genlab.registry import MODELS
    from genlab.runs import data_info

    data = points(400)  # the conftest split: 40 test points
    net = build_model(RunConfig(model="vae", model_config=MODELS.get("vae").Config(latent_dim=2, hidden=(16,)),
                                data_info=data_info(data)))
    scores = genlab.evaluate(net, ["elbo", "nll"], data=data, nll_k=4)
    assert set(scores) == {"elbo", "nll"} and scores.floor == {} and scores.info["split"] == "test"
    with pytest.raises(GenlabError, match="needs its data"):
        genlab.evaluate(net, ["elbo"])


def test_labels_budget_needs_a_model_that_learns_from_partial_labels(tmp_path):
    with pytest.raises(GenlabError, match="does not learn from partly labelled data .these do: m2"):
        genlab.train("vae", data=blobs(64), labels=8, steps=1, runs=tmp_path, progress=False, final=False)


def test_qualities_need_a_quality_ladder(tmp_path):
    with pytest.raises(GenlabError, match="has no qualities"):
        genlab.train("vae", qualities="1..2", steps=1, runs=tmp_path, progress=False)


def test_interpolate_images_ends_reconstruct_them(tmp_path):
    run = genlab.train("ae", data=blobs(64), steps=30, runs=tmp_path, overrides=QUICK, progress=False, final=False)
    model = run.load(which="last")
    a, b = blobs(64).x[:2]
    path = genlab.latent.interpolate(model, a, b, steps=5)
    assert path.shape == (5, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(path[0], model.reconstruct(a[None])[0], atol=1e-5)
        assert torch.allclose(path[-1], model.reconstruct(b[None])[0], atol=1e-5)
    pairs = genlab.latent.interpolate(model, blobs(64).x[:3], blobs(64).x[3:6], steps=4, slerp=True)
    assert pairs.shape == (3, 4, 1, 12, 12)


@pytest.mark.slow
def test_run_tools_are_plain_calls_without_argparse(tmp_path):
    """The latent tools and the clustering commands are library calls on a run: files in, files and results out."""
    from PIL import Image

    from genlab.api.clustering import cluster_run, probe_run
    from genlab.api.latent import Examples, write_arithmetic, write_interpolation, write_traversal

    run = genlab.train("vae", data="digits", steps=30, runs=tmp_path, overrides=QUICK, progress=False, final=False)
    strip = write_interpolation(run, tmp_path / "i.png", a="test:0", b="test:1", steps=5)
    assert Image.open(strip).size[0] > Image.open(strip).size[1]  # one strip of 5 images
    what = write_traversal(run.path, tmp_path / "t.png", dims=2, steps=3)
    assert what.startswith("rows: latent dimensions 0..1")
    write_arithmetic(run, tmp_path / "a.png", ["label=1"], ["label=7"], ["test:3"], examples=Examples(k=5))
    assert (tmp_path / "a.png").stat().st_size > 0
    got = cluster_run(run, tmp_path / "c.png", k=10, split="test", report_json=tmp_path / "c.json")
    assert set(got.found.scores) == {"latent_kmeans", "pixel_kmeans"} and got.labelled
    assert 0.5 < got.found.scores["pixel_kmeans"]["cluster_acc"] <= 1.0  # digits' pixels cluster well
    assert got.picture.exists() and (tmp_path / "c.json").exists()
    probed = probe_run(run, labels=50)
    assert probed["latent_dim"] == 2 and probed["test_items"] > 0 and probed["pixels"] > 0.5
    with pytest.raises(GenlabError, match="neither an image file nor a reference"):
        write_interpolation(run, tmp_path / "x.png", a="nowhere.png", b="test:1")
