"""Data sets: built-in sets, user folders/npz/IDX files, their error messages, and the resumable Loader."""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import DATASETS, DataSet, Loader, dataset_names, load_data, render_shapes
from genlab.errors import GenlabError


def _disjoint_cover(data: DataSet) -> None:
    parts = [data.splits[s] for s in ("train", "val", "test")]
    assert all(len(p) > 0 for p in parts)
    together = torch.cat(parts)
    assert len(together.unique()) == len(together) == len(data)


# --- built-in sets -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist() -> DataSet:
    return load_data("mnist5k")


def test_mnist5k_shapes_range_and_fixed_stratified_split(mnist):
    assert mnist.name == "mnist5k" and mnist.kind == "image"
    assert mnist.x.shape == (5000, 1, 28, 28) and mnist.x.dtype == torch.float32
    assert mnist.x.min() == 0 and mnist.x.max() == 1
    assert mnist.y.dtype == torch.int64 and mnist.num_classes == 10
    assert mnist.class_names == [str(c) for c in range(10)]
    assert {s: len(i) for s, i in mnist.splits.items()} == {"train": 4000, "val": 500, "test": 500}
    _disjoint_cover(mnist)
    for split, per_class in (("train", 400), ("val", 50), ("test", 50)):
        assert torch.bincount(mnist.y[mnist.splits[split]], minlength=10).tolist() == [per_class] * 10
    again = load_data("mnist5k", seed=7)  # the split does not follow the user's seed
    for s in mnist.splits:
        assert torch.equal(again.splits[s], mnist.splits[s])
    assert torch.equal(again.x, mnist.x)


def test_mnist5k_resize_and_channels():
    small = load_data("mnist5k", image_size=14, channels=3)
    assert small.x.shape == (5000, 3, 14, 14)
    assert 0 <= small.x.min() and small.x.max() <= 1
    assert torch.equal(small.x[:, 0], small.x[:, 2])


def test_digits():
    d = load_data("digits")
    assert d.x.shape == (1797, 1, 8, 8) and d.x.min() == 0 and d.x.max() == 1
    assert {s: len(i) for s, i in d.splits.items()} == {"train": 1439, "val": 179, "test": 179}
    _disjoint_cover(d)
    assert set(d.y[d.splits["test"]].tolist()) == set(range(10))  # stratified
    assert load_data("digits", image_size=16).x.shape == (1797, 1, 16, 16)


@pytest.mark.parametrize("variant,k,sigma", [("ring8", 8, 0.01), ("grid25", 25, 0.05), ("spiral", 20, 0.02)])
def test_toy2d(variant, k, sigma):
    d = load_data(f"toy2d:{variant}")
    assert d.name == f"toy2d:{variant}" and d.kind == "points"
    assert d.x.shape == (10_000, 2) and d.x.dtype == torch.float32
    centres = d.meta["centres"]
    assert centres.shape == (k, 2) and d.meta["sigma"] == sigma and d.num_classes == k
    near = (d.x - centres[d.y]).norm(dim=1) <= 4 * sigma
    assert near.float().mean() > 0.99
    assert set(d.y.tolist()) == set(range(k))
    assert {s: len(i) for s, i in d.splits.items()} == {"train": 8000, "val": 1000, "test": 1000}
    _disjoint_cover(d)
    assert torch.equal(load_data(f"toy2d:{variant}").x, d.x)
    assert not torch.equal(load_data(f"toy2d:{variant}", seed=1).x, d.x)
    assert len(load_data(f"toy2d:{variant}", n=300)) == 300
    gaps = torch.cdist(centres, centres) + torch.eye(k) * 100
    assert gaps.min() > 10 * sigma  # modes are well separated


def test_toy2d_exact_centres():
    ring = load_data("toy2d:ring8").meta["centres"]
    assert torch.allclose(ring.norm(dim=1), torch.ones(8))
    grid = load_data("toy2d:grid25", n=10).meta["centres"]
    assert sorted(set(grid[:, 0].tolist())) == [-4, -2, 0, 2, 4]


def test_shapes_binary_deterministic_and_rerenderable():
    d = load_data("shapes", n=300)
    assert d.x.shape == (300, 1, 32, 32) and d.kind == "image"
    assert set(d.x.unique().tolist()) <= {0.0, 1.0}
    assert d.factors.shape == (300, 5) and d.factors.dtype == torch.float32
    assert d.factor_names == ["shape", "scale", "rotation", "x", "y"]
    assert d.class_names == ["square", "ellipse", "heart"] and torch.equal(d.y, d.factors[:, 0].long())
    f = d.factors
    assert f[:, 1].min() >= 0.5 and f[:, 1].max() <= 1 and f[:, 2].min() >= 0 and f[:, 2].max() < 2 * math.pi
    assert torch.equal(render_shapes(*f.T, size=32), d.x)
    assert (d.x.flatten(1).sum(1) > 0).all()
    assert torch.equal(load_data("shapes", n=300).x, d.x)
    assert not torch.equal(load_data("shapes", n=300, seed=1).x, d.x)
    assert load_data("shapes", n=10, image_size=48).x.shape == (10, 1, 48, 48)


def test_shapes_default_size():
    d = load_data("shapes")
    assert d.x.shape == (12_000, 1, 32, 32)
    assert {s: len(i) for s, i in d.splits.items()} == {"train": 9600, "val": 1200, "test": 1200}
    assert torch.bincount(d.y).min() > 3500


def test_render_shapes_symmetry():
    scale = torch.tensor([0.6, 0.8, 1.0])
    square = render_shapes(0, scale, 0.3, 0.5, 0.5)
    assert torch.equal(render_shapes(0, scale, 0.3 + math.pi / 2, 0.5, 0.5), square)
    ellipse = render_shapes(1, scale, 0.3, 0.5, 0.5)
    assert torch.equal(render_shapes(1, scale, 0.3 + math.pi, 0.5, 0.5), ellipse)
    assert not torch.equal(render_shapes(1, scale, 0.3 + math.pi / 2, 0.5, 0.5), ellipse)
    heart = render_shapes(2, scale, 0.0, 0.5, 0.5)
    for turn in (math.pi / 2, math.pi):
        assert not torch.equal(render_shapes(2, scale, turn, 0.5, 0.5), heart)
    assert torch.equal(render_shapes(2, scale, 0.0, 0.5, 0.5, size=32), heart)


def test_render_shapes_stay_inside():
    corner = render_shapes(torch.tensor([0, 1, 2]), 1.0, 0.7, 0.0, 1.0, size=64)
    centre = render_shapes(torch.tensor([0, 1, 2]), 1.0, 0.7, 0.5, 0.5, size=64)
    ratio = corner.flatten(1).sum(1) / centre.flatten(1).sum(1)
    assert ((ratio - 1).abs() < 0.05).all()  # nothing is cut off at the edge


# --- folders of images ---------------------------------------------------------------------------
def _png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_grey_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(6)]
    for i, a in enumerate(arrays):
        _png(tmp_path / "my pngs" / f"{i}.png", a)
    d = load_data(f"folder:{tmp_path / 'my pngs'}")
    assert d.name == "folder-my_pngs" and d.in_memory and d.y is None
    assert d.x.shape == (6, 1, 28, 28)
    assert torch.equal(d.x, torch.from_numpy(np.stack(arrays)[:, None] / np.float32(255)))
    _disjoint_cover(d)
    assert load_data(f"folder:{tmp_path / 'my pngs'}", channels=3).x.shape == (6, 3, 28, 28)


def test_folder_rgb_jpeg_labelled_subfolders_and_resize(tmp_path):
    colours = {"cats": (250, 10, 10), "dogs": (10, 10, 250)}
    for name, rgb in colours.items():
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (20 + 10 * i, 20), rgb).save(tmp_path / name / f"{i}.jpg")
    with pytest.raises(GenlabError, match="different sizes") as err:
        load_data(f"folder:{tmp_path}")
    assert "data.image_size" in str(err.value) and "0.jpg" in str(err.value) and "\n" not in str(err.value)
    d = load_data(f"folder:{tmp_path}", image_size=16)
    assert d.x.shape == (6, 3, 16, 16) and d.class_names == ["cats", "dogs"] and d.num_classes == 2
    assert d.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert (d.x[:3, 0] > 0.9).all() and (d.x[3:, 2] > 0.9).all() and (d.x[:, 1] < 0.1).all()
    grey = load_data(f"folder:{tmp_path}", image_size=16, channels=1)
    assert grey.x.shape == (6, 1, 16, 16)


def test_folder_streams_through_loader(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(20):
        _png(tmp_path / f"{i:02d}.png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    whole = load_data(f"folder:{tmp_path}")
    stream = load_data(f"folder:{tmp_path}", memory_limit=0)
    assert whole.in_memory and not stream.in_memory and stream.x is None
    assert len(stream) == 20 and stream.shape == (3, 12, 12) and len(stream.meta["files"]) == 20
    assert torch.equal(pickle.loads(pickle.dumps(stream.read))(torch.tensor([3, 5])), whole.x[[3, 5]])
    reference = Loader(whole, "train", batch_size=4, seed=3, workers=0)
    for workers in (0, 2):
        loader = Loader(stream, "train", batch_size=4, seed=3, workers=workers)
        for _, a, b in zip(range(6), loader, reference, strict=False):  # crosses an epoch (4 steps)
            assert a["x"].shape == (4, 3, 12, 12) and torch.equal(a["x"], b["x"])
        reference = Loader(whole, "train", batch_size=4, seed=3, workers=0)


def test_streaming_read_error_is_one_line(tmp_path):
    for i in range(8):
        _png(tmp_path / f"{i}.png", np.zeros((6, 6), np.uint8))
    stream = load_data(f"folder:{tmp_path}", memory_limit=0)
    (tmp_path / "3.png").write_bytes(b"broken")  # spoilt after loading: found when a worker reads it
    with pytest.raises(GenlabError, match="3.png") as err:
        for _, _batch in zip(range(8), Loader(stream, "all", batch_size=8, workers=2), strict=False):
            pass
    assert "\n" not in str(err.value) and str(err.value).startswith("cannot read the image")


def test_folder_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(GenlabError, match="nowhere"):
        load_data(f"folder:{missing}")
    (tmp_path / "file.txt").write_text("hi")
    with pytest.raises(GenlabError, match="not a folder"):
        load_data(f"folder:{tmp_path / 'file.txt'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenlabError, match="empty.*no images"):
        load_data(f"folder:{tmp_path / 'empty'}")
    _png(tmp_path / "bad" / "a.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "bad" / "x.png").write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(GenlabError, match="x.png") as err:
        load_data(f"folder:{tmp_path / 'bad'}")
    assert "\n" not in str(err.value)


def test_folder_path_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _png(tmp_path / "pics" / "a.png", np.zeros((8, 8), np.uint8))
    assert len(load_data("folder:~/pics")) == 1


# --- npz -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,expected", [
    ((10, 6, 5), (10, 1, 6, 5)), ((10, 1, 6, 5), (10, 1, 6, 5)), ((10, 3, 6, 5), (10, 3, 6, 5)),
    ((10, 6, 5, 3), (10, 3, 6, 5)), ((10, 6, 5, 1), (10, 1, 6, 5))])
@pytest.mark.slow
def test_npz_image_layouts(tmp_path, shape, expected):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.savez(tmp_path / "u8.npz", x=a)
    np.savez(tmp_path / "f32.npz", x=a.astype(np.float32) / 255, y=np.arange(10) % 2)
    u8, f32 = load_data(f"npz:{tmp_path / 'u8.npz'}"), load_data(f"npz:{tmp_path / 'f32.npz'}")
    assert u8.x.shape == expected and u8.kind == "image" and u8.y is None and u8.name == "npz-u8"
    assert torch.allclose(u8.x, f32.x) and f32.y.tolist() == [0, 1] * 5 and f32.num_classes == 2
    if len(shape) == 4 and shape[-1] == 3:  # channels-last is moved, not reshaped
        assert torch.equal(u8.x[:, 2], torch.from_numpy(a[..., 2] / np.float32(255)))
    assert load_data(f"npz:{tmp_path / 'u8.npz'}", image_size=8).x.shape[-2:] == (8, 8)


def test_npz_points_kept_as_is(tmp_path):
    pts = np.random.default_rng(0).normal(0, 5, (50, 3)).astype(np.float64)
    np.savez(tmp_path / "pts.npz", x=pts, y=np.zeros(50, np.int64))
    d = load_data(f"npz:{tmp_path / 'pts.npz'}")
    assert d.kind == "points" and d.x.shape == (50, 3) and torch.allclose(d.x, torch.from_numpy(pts).float())
    _disjoint_cover(d)
    assert [len(d.splits[s]) for s in ("train", "val", "test")] == [44, 3, 3]


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((100, 4, 4), np.uint8), y=np.zeros(90, np.int64))
    with pytest.raises(GenlabError, match="mismatch.npz.*x has 100 items but y has 90"):
        load_data(f"npz:{tmp_path / 'mismatch.npz'}")
    np.savez(tmp_path / "nox.npz", images=np.zeros((3, 4, 4)), labels=np.zeros(3))
    with pytest.raises(GenlabError, match="nox.npz.*images, labels"):
        load_data(f"npz:{tmp_path / 'nox.npz'}")
    np.savez(tmp_path / "range.npz", x=np.full((3, 4, 4), 2.0, np.float32))
    with pytest.raises(GenlabError, match=r"range.npz.*\[2, 2\]"):
        load_data(f"npz:{tmp_path / 'range.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(GenlabError, match="junk.npz") as err:
        load_data(f"npz:{tmp_path / 'junk.npz'}")
    assert "\n" not in str(err.value)
    with pytest.raises(GenlabError, match="absent.npz"):
        load_data(f"npz:{tmp_path / 'absent.npz'}")


# --- IDX -----------------------------------------------------------------------------------------
def _idx(path, array: np.ndarray, magic: int, *, gz: bool) -> None:
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("images_gz,labels_gz", [(True, True), (False, False), (True, False)])
def test_idx_with_labels(tmp_path, images_gz, labels_gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 7, 9), dtype=np.uint8)
    labels = rng.integers(0, 10, 40).astype(np.uint8)
    name = "train-images-idx3-ubyte" + (".gz" if images_gz else "")
    _idx(tmp_path / name, images, 0x803, gz=images_gz)
    _idx(tmp_path / ("train-labels-idx1-ubyte" + (".gz" if labels_gz else "")), labels, 0x801, gz=labels_gz)
    d = load_data(f"idx:{tmp_path / name}")
    assert d.x.shape == (40, 1, 7, 9) and d.name == "idx-train-images"
    assert torch.equal(d.x[:, 0], torch.from_numpy(images / np.float32(255)))
    assert d.y.tolist() == labels.tolist() and d.num_classes == int(labels.max()) + 1
    _disjoint_cover(d)


def test_idx_unlabelled_and_errors(tmp_path):
    images = np.zeros((5, 4, 4), np.uint8)
    _idx(tmp_path / "t10k-images-idx3-ubyte", images, 0x803, gz=False)
    assert load_data(f"idx:{tmp_path / 't10k-images-idx3-ubyte'}").y is None
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), 0x801, gz=False)
    with pytest.raises(GenlabError, match="5 images but .*t10k-labels-idx1-ubyte has 4 labels"):
        load_data(f"idx:{tmp_path / 't10k-images-idx3-ubyte'}")
    _idx(tmp_path / "magic.idx", images, 0x801, gz=True)
    with pytest.raises(GenlabError, match=r"magic.idx is not an IDX images file \(magic 0x00000801"):
        load_data(f"idx:{tmp_path / 'magic.idx'}")
    raw = struct.pack(">4I", 0x803, 5, 4, 4) + images.tobytes()[:-7]
    (tmp_path / "short.idx").write_bytes(raw)
    with pytest.raises(GenlabError, match="short.idx is truncated"):
        load_data(f"idx:{tmp_path / 'short.idx'}")


# --- names, options ------------------------------------------------------------------------------
def test_names_and_unknowns():
    assert dataset_names() == ["mnist5k", "digits", "toy2d:ring8", "toy2d:grid25", "toy2d:spiral", "shapes",
                               "folder:PATH", "npz:PATH", "idx:PATH"]
    assert {"mnist5k", "digits", "toy2d", "shapes", "folder", "npz", "idx"} <= set(DATASETS.names())
    with pytest.raises(GenlabError, match="unknown data set 'mnist6k'.*mnist5k"):
        load_data("mnist6k")
    with pytest.raises(GenlabError, match="ring8, grid25, spiral"):
        load_data("toy2d:ring9")
    with pytest.raises(GenlabError, match="ring8"):
        load_data("toy2d")
    with pytest.raises(GenlabError, match="no option image_size"):
        load_data("toy2d:ring8", image_size=32)
    assert len(load_data("toy2d:ring8", n=30, image_size=None, channels=None)) == 30


# --- Loader ---------------------------------------------------------------------------------------
def _counting(n: int = 50) -> DataSet:
    """Points whose value is their index, so a batch shows which items it holds."""
    return DataSet(name="count", kind="points", x=torch.arange(n, dtype=torch.float32).view(n, 1),
                   splits={"train": torch.arange(n), "val": torch.arange(0), "test": torch.arange(0)})


@pytest.mark.parametrize("k", [3, 6, 8])  # mid-epoch, exactly at the epoch's end, in the second epoch
def test_loader_resumes_exactly(k):
    data = _counting()
    straight = Loader(data, batch_size=8, seed=5, workers=0)  # 6 steps per epoch
    expected = [b["x"] for _, b in zip(range(k + 10), straight, strict=False)]
    first = Loader(data, batch_size=8, seed=5, workers=0)
    seen = [b["x"] for _, b in zip(range(k), first, strict=False)]
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = Loader(data, batch_size=8, seed=5, workers=0)
    resumed.load_state_dict(torch.load(buffer))
    seen += [b["x"] for _, b in zip(range(10), resumed, strict=False)]
    assert all(torch.equal(a, b) for a, b in zip(seen, expected, strict=True))
    epoch = torch.cat(expected[:6]).flatten()
    assert len(epoch.unique()) == 48  # one epoch visits distinct items


def test_loader_ranks_see_disjoint_items():
    data = _counting(50)
    items = []
    for rank in (0, 1):
        loader = Loader(data, batch_size=10, seed=2, rank=rank, world_size=2, workers=0)
        assert loader.rank_batch_size == 5 and loader.steps_per_epoch == 5
        items.append(torch.cat([b["x"] for _, b in zip(range(loader.steps_per_epoch), loader, strict=False)]))
    assert len(items[0]) == len(items[1]) == 25
    assert not set(items[0].flatten().tolist()) & set(items[1].flatten().tolist())


def test_loader_ranks_split_the_global_batch():
    """Step i's items over all ranks are exactly the single-process batch i, and the state is the same."""
    data = _counting(50)
    whole = Loader(data, batch_size=8, seed=4, workers=0)
    ranks = [Loader(data, batch_size=8, seed=4, rank=r, world_size=2, workers=0) for r in (0, 1)]
    for _, one, *parts in zip(range(14), whole, *ranks, strict=False):  # 6 steps an epoch: crosses two epochs
        assert torch.equal(one["x"], torch.cat([p["x"] for p in parts]))
    assert ranks[0].state_dict()["position"] == whole.state_dict()["position"]
    with pytest.raises(GenlabError, match="multiple"):
        Loader(data, batch_size=7, rank=0, world_size=2)
