"""Shared fixtures: tiny data sets built in memory, a private feature-net cache, one thread."""

from __future__ import annotations

import pytest
import torch

from genlab.config import DataInfo, RunConfig
from genlab.data import DataSet, load_data

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def blobs(n: int = 240, size: int = 12, seed: int = 0) -> DataSet:
    """Binary-ish images of a bright square at one of 4 positions (label = position)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.rand(n, 1, size, size, generator=g) * 0.1
    h = size // 2
    for k, (r, c) in enumerate([(0, 0), (0, h), (h, 0), (h, h)]):
        x[y == k, :, r:r + h, c:c + h] = 0.9
    idx = torch.randperm(n, generator=g)
    a, b = int(0.8 * n), int(0.9 * n)
    return DataSet(name="blobs", kind="image", x=x, y=y, num_classes=4, class_names=list("abcd"),
                   splits={"train": idx[:a], "val": idx[a:b], "test": idx[b:]})


def points(n: int = 400, seed: int = 0) -> DataSet:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = torch.randint(0, 4, (n,), generator=g)
    x = centres[y] + 0.05 * torch.randn(n, 2, generator=g)
    idx = torch.randperm(n, generator=g)
    return DataSet(name="pts", kind="points", x=x, y=y, num_classes=4,
                   splits={"train": idx[:320], "val": idx[320:360], "test": idx[360:]},
                   meta={"centres": centres})


def info(data: DataSet) -> DataInfo:
    return DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes)


@pytest.fixture
def image_data() -> DataSet:
    return blobs()


@pytest.fixture
def point_data() -> DataSet:
    return points()


# --- runs for the explorer's tests: tiny models trained for a few steps on the 8x8 digits ---------
EXPLORE_RUNS = {
    "vae": ["--set", "model.latent_dim=12", "--set", "model.hidden=32"],
    "gan": ["--set", "model.latent_dim=6", "--set", "model.hidden=32"],
    "infogan": ["--set", "model.latent_dim=4", "--set", "model.hidden=32", "--set", "model.g_fc=0"],
    "cgan": ["--set", "model.latent_dim=4", "--set", "model.hidden=32"],
    "stackgan": [],
}


@pytest.fixture(scope="session")
def explore_runs(tmp_path_factory) -> dict:
    """{model name: run folder} of the runs in ``EXPLORE_RUNS``, trained for 5 steps each."""
    from genlab.cli import main

    root = tmp_path_factory.mktemp("explore-runs")
    out = {}
    for name, sets in EXPLORE_RUNS.items():
        runs = root / name
        args = ["-q", "train", name, "--data", "digits", "--steps", "5", "--runs", str(runs), "--no-final", *sets,
                "--set", "train.eval_every=1000", "--set", "train.eval_metrics=", "--set", "train.sample_every=1000"]
        assert main(args) == 0
        (out[name],) = runs.iterdir()
    return out


# --- DC-IGN on shapes (tests/test_semantics.py, tests/test_dcign.py) ----------------------------------
TINY_NETS = {"hidden": (32,), "channels": (8, 16)}  # narrow nets for the model tests


@pytest.fixture(scope="module")
def shapes() -> DataSet:
    return load_data("shapes", n=600)


def tiny_dcign(data: DataSet, **extra):
    """A small DC-IGN for ``data``: 4 named units and 2 free ones, narrow nets."""
    from genlab.models import build_model
    from genlab.models.dcign import DCIGNConfig
    from genlab.runs import data_info

    return build_model(RunConfig(model="dcign", model_config=DCIGNConfig(**{"latent_dim": 6, **TINY_NETS, **extra}),
                                 data_info=data_info(data)))
