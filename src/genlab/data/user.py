"""User data: a folder of images (folder:PATH), arrays in an .npz file (npz:PATH) and MNIST-format
IDX files (idx:PATH).

Images become float32 (N, C, H, W) in [0, 1]. Every mistake in the user's data is a GenlabError of one
line naming the file. Splits are fixed whatever the user's seed: a shuffle seeded with 0 puts 5% of the
items in val, 5% in test (at least one each when N >= 3) and the rest in train; a set of one or two
items is too small to hold anything out, so all three splits are the whole set.
"""

from __future__ import annotations

import gzip
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import GenlabError
from ..registry import DATASETS
from .base import SPLITS, DataSet
from .builtin import check_channels, positive_int, random_split, resize_images, set_channels

MEMORY_LIMIT = 2 * 1024**3  # bytes: a folder whose float32 tensor would be larger is streamed from disk
IMAGE_EXTENSIONS = frozenset(
    ".png .jpg .jpeg .jpe .jfif .bmp .dib .gif .tif .tiff .webp .ppm .pgm .pbm .pnm .tga .qoi .avif "
    ".jp2 .j2k .pcx .sgi .rgb .bw .ras .xbm .im .msp".split())
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
ALPHA_MODES = frozenset({"LA", "La", "RGBA", "RGBa"})  # after palettes become RGBA
_HIGH_DEPTH = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})  # 16-bit grey: divided by 65535


def holdout_split(n: int) -> dict[str, Tensor]:
    """The fixed 90/5/5 split of user data (see the module docstring)."""
    if n < 3:
        return {name: torch.arange(n) for name in SPLITS}
    return random_split(n, (0.9, 0.05, 0.05), seed=0, nonempty=True)


def short_name(kind: str, stem: str) -> str:
    """``folder-my_pngs``: a data set name that is safe inside a folder name."""
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem).strip('_.') or 'data'}"


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _existing(path: str | None, kind: str, *, folder: bool) -> Path:
    if not path:
        raise GenlabError(f"{kind} needs a path, e.g. {kind}:PATH")
    p = Path(os.path.abspath(Path(path).expanduser()))  # absolute: streaming workers may run elsewhere
    if not p.exists():
        raise GenlabError(f"no such {'folder' if folder else 'file'}: {p}")
    if folder and not p.is_dir():
        raise GenlabError(f"{p} is not a folder (folder:PATH takes a folder of images)")
    if not folder and p.is_dir():
        raise GenlabError(f"{p} is a folder, not a file (use folder:{p} for a folder of images)")
    return p


# --- folders of images -------------------------------------------------------------------------
def read_image(path: str | Path, channels: int, size: int | tuple[int, int] | None) -> np.ndarray:
    """One image file as float32 (C, H, W) in [0, 1]: converted to ``channels``, transparency laid
    on black, squashed to ``size`` x ``size`` or ``size`` = (H, W) (bilinear) when given. 16-bit grey
    is divided by 65535, other modes by 255."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _HIGH_DEPTH or img.mode == "F":
                div = 65535.0 if img.mode in _HIGH_DEPTH else 1.0
                img = Image.fromarray(np.asarray(img, dtype=np.float32) / div)  # mode "F", grey in [0, 1]
            else:
                img = img.convert("RGBA") if img.mode in ("P", "PA") else img
                if img.mode in ALPHA_MODES:  # transparent pixels are the dark ground, as in the explorer
                    img = Image.alpha_composite(Image.new("RGBA", img.size, (0, 0, 0, 255)), img.convert("RGBA"))
                img = img.convert("L" if channels == 1 else "RGB")
            if size is not None:
                height, width = (size, size) if isinstance(size, int) else size
                if img.size != (width, height):
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float32)  # (H, W) or (H, W, 3)
            arr = arr if img.mode == "F" else arr / 255.0
    except Exception as err:  # any failure to decode a user's file is a bad file
        raise GenlabError(f"cannot read the image {path}: {_one_line(err)}") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, H, W)
    if arr.shape[0] != channels:  # 16-bit or float grey asked for as RGB
        arr = np.repeat(arr, channels, axis=0)
    return np.clip(arr, 0.0, 1.0)


class ImageReader:
    """Reads a batch of images of a streaming folder by index: (B,) -> (B, C, H, W) float32.

    A plain class (not a lambda) so that DataLoader workers can pickle it.
    """

    def __init__(self, files: list[str], channels: int, size: int | None):
        self.files, self.channels, self.size = files, channels, size

    def __call__(self, index: Tensor) -> Tensor:
        items = [read_image(self.files[i], self.channels, self.size) for i in index.tolist()]
        return torch.from_numpy(np.stack(items))  # (B, C, H, W)


def _find_images(root: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """Image files under ``root`` (sorted), and their labels when they sit in class sub-folders."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise GenlabError(f"{root} holds no images (no .png, .jpg, .bmp, .gif, .tif, .webp, ... files in it "
                          f"or its sub-folders)")
    classes = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    if len(classes) < 2:  # one sub-folder is a place to keep files, not a labelling
        return files, None, None
    top = [p.name for p in files if p.parent == root]
    if top:
        raise GenlabError(f"{root} has class sub-folders but also images at the top ({top[0]}, ...); "
                          f"move every image into a class sub-folder")
    label = {c: k for k, c in enumerate(classes)}
    return files, [label[p.relative_to(root).parts[0]] for p in files], classes


def _headers(files: list[Path]) -> tuple[list[tuple[int, int]], list[str]]:
    sizes, modes = [], []
    for f in files:
        try:
            with Image.open(f) as img:
                sizes.append(img.size)
                modes.append(img.mode)
        except Exception as err:
            raise GenlabError(f"cannot read the image {f}: {_one_line(err)}") from None
    return sizes, modes


@DATASETS.register("folder")
def load_folder(arg: str | None = None, *, image_size: int | None = None, channels: int | None = None,
                seed: int = 0, memory_limit: int | None = None) -> DataSet:
    """A folder of images (PNG, JPEG, ... searched recursively); class sub-folders give labels.

    With two or more sub-folders holding images, their sorted names are the classes. ``channels``
    defaults to 1 when every image is grey, else 3. Without ``image_size`` all images must share one
    size; with it they are squashed to image_size x image_size (bilinear). Sets whose float32 tensor
    fits in ``memory_limit`` bytes (default ``MEMORY_LIMIT``, 2 GiB) are loaded into memory; larger
    ones are streamed: ``x`` is None and ``read`` loads batches by index. ``seed`` is not used.
    """
    root = _existing(arg, "folder", folder=True)
    files, labels, classes = _find_images(root)
    sizes, modes = _headers(files)
    channels = check_channels(channels, str(root)) or (1 if all(m in GREY_MODES for m in modes) else 3)
    if image_size is not None:
        size = positive_int(image_size, "image_size", str(root), minimum=2)
        width = height = size
    else:
        size, (width, height) = None, sizes[0]
        other = next((i for i, s in enumerate(sizes) if s != sizes[0]), None)
        if other is not None:
            (w1, h1), (w2, h2) = sizes[0], sizes[other]
            raise GenlabError(
                f"images in {root} have different sizes ({w1}x{h1} in {files[0].relative_to(root)}, "
                f"{w2}x{h2} in {files[other].relative_to(root)}); pass --set data.image_size=N")
    names = [str(f) for f in files]
    limit = MEMORY_LIMIT if memory_limit is None else memory_limit
    common = dict(name=short_name("folder", root.resolve().name), kind="image",
                  y=None if labels is None else torch.tensor(labels, dtype=torch.int64),
                  splits=holdout_split(len(files)), num_classes=None if classes is None else len(classes),
                  class_names=classes, meta={"files": names, "root": str(root)})
    if len(files) * channels * height * width * 4 > limit:
        return DataSet(x=None, length=len(files), item_shape=(channels, height, width),
                       read=ImageReader(names, channels, size), **common)
    x = torch.empty(len(files), channels, height, width)  # (N, C, H, W)
    for i, f in enumerate(names):
        x[i] = torch.from_numpy(read_image(f, channels, size))
    return DataSet(x=x, **common)


# --- arrays ------------------------------------------------------------------------------------
def _images_from_array(a: np.ndarray, path: Path) -> Tensor:
    """(N, H, W), (N, C, H, W) or (N, H, W, C) with C in {1, 3} -> float32 (N, C, H, W) in [0, 1]."""
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[1] not in (1, 3) and a.shape[3] in (1, 3):
        a = a.transpose(0, 3, 1, 2)  # channels-last -> (N, C, H, W)
    elif a.ndim != 4 or a.shape[1] not in (1, 3):
        raise GenlabError(f"x in {path} has shape {a.shape}; expected (N, D) points or images shaped "
                          f"(N, H, W), (N, C, H, W) or (N, H, W, C) with C = 1 or 3")
    if a.dtype == np.uint8:
        return torch.from_numpy(a.astype(np.float32) / 255.0)
    if a.dtype == np.uint16:
        return torch.from_numpy(a.astype(np.float32) / 65535.0)
    if a.dtype == np.bool_:
        return torch.from_numpy(a.astype(np.float32))
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise GenlabError(f"x in {path} has dtype {a.dtype}; use uint8 or floats in [0, 1]")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
        raise GenlabError(f"x in {path} has values in [{lo:.4g}, {hi:.4g}]; images must be uint8 (0..255) "
                          f"or floats in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _labels(y: np.ndarray, n: int, path: Path, what: str = "x") -> Tensor:
    """Labels as int64 (N,), checked: 1-D, one per item, whole numbers >= 0."""
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != n:
        count = len(y) if y.ndim == 1 else f"an array of shape {y.shape}"
        raise GenlabError(f"{path}: {what} has {n} items but y has {count}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)) or (
            len(y) and (np.any(y < 0) or np.any(y != np.round(y)))):
        raise GenlabError(f"{path}: y must hold whole-number class labels >= 0 (found dtype {y.dtype})")
    return torch.from_numpy(y.astype(np.int64))


def _labelled(y: Tensor | None, names=None) -> dict:
    if y is None:
        return {"y": None}
    k = int(y.max()) + 1 if len(y) else 0
    names = [str(c) for c in names] if names is not None and len(names) == k else [str(c) for c in range(k)]
    return {"y": y, "num_classes": k, "class_names": names}


@DATASETS.register("npz")
def load_npz(arg: str | None = None, *, image_size: int | None = None, channels: int | None = None,
             seed: int = 0) -> DataSet:
    """Arrays from an .npz file: ``x`` images (uint8 or floats in [0, 1]) or (N, D) points, optional ``y``.

    Images may be (N, H, W), (N, C, H, W) or channels-last (N, H, W, C) with C = 1 or 3; an optional
    ``class_names`` array names the labels. ``image_size`` resizes (bilinear, antialiased) and
    ``channels`` converts images; points are kept as they are. ``seed`` is not used.
    """
    path = _existing(arg, "npz", folder=False)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # an .npy file is x alone
            found = {"x": loaded}
        else:
            with loaded:
                found = {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise GenlabError(f"cannot read {path} as an .npz file: {_one_line(err)}") from None
    if "x" not in found:
        raise GenlabError(f"{path} has no array named 'x' (found: {', '.join(sorted(found)) or 'none'})")
    a = found["x"]
    if a.ndim < 2 or len(a) == 0:
        raise GenlabError(f"x in {path} has shape {a.shape}; expected (N, D) points or (N, ...) images")
    y = _labels(found["y"], len(a), path) if "y" in found else None
    common = dict(name=short_name("npz", path.stem), splits=holdout_split(len(a)), meta={"source": str(path)},
                  **_labelled(y, found.get("class_names")))
    if a.ndim == 2:
        if image_size is not None or channels is not None:
            raise GenlabError(f"{path} holds (N, D) points: image_size and channels do not apply")
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise GenlabError(f"x in {path} must hold finite numbers (found dtype {a.dtype})")
        return DataSet(kind="points", x=torch.from_numpy(a.astype(np.float32)), **common)
    x = _images_from_array(a, path)
    size = None if image_size is None else positive_int(image_size, "image_size", str(path), minimum=2)
    x = set_channels(resize_images(x, size), check_channels(channels, str(path)))
    return DataSet(kind="image", x=x, **common)


# --- IDX (MNIST format) ------------------------------------------------------------------------
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801
_IMAGES_NAME = re.compile(r"images([-.])idx3([-.])ubyte")


def _read_idx(path: Path, magic: int, what: str) -> tuple[tuple[int, ...], np.ndarray]:
    """The dims and the uint8 payload of an IDX file (gzipped or not), checked against its header."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise GenlabError(f"cannot read {path}: {_one_line(err)}") from None
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        shown = "none: the file is shorter than 4 bytes" if found is None else f"0x{found:08x}"
        raise GenlabError(f"{path} is not an IDX {what} file (magic {shown}; expected 0x{magic:08x})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GenlabError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise GenlabError(f"{path} is {state}: the header promises {' x '.join(map(str, dims))} bytes of "
                          f"data ({expected} bytes in all) but the file holds {len(raw)}")
    return dims, np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def labels_file(path: Path) -> Path | None:
    """The labels file beside an IDX images file: ``*-images-idx3-ubyte[.gz]`` -> ``*-labels-idx1-ubyte``
    with or without .gz (MNIST, Fashion-MNIST and KMNIST names); None when there is none."""
    if not _IMAGES_NAME.search(path.name):
        return None
    base = _IMAGES_NAME.sub(r"labels\1idx1\2ubyte", path.name).removesuffix(".gz")
    first, second = (base + ".gz", base) if path.name.endswith(".gz") else (base, base + ".gz")
    return next((path.with_name(c) for c in (first, second) if path.with_name(c).is_file()), None)


@DATASETS.register("idx")
def load_idx(arg: str | None = None, *, image_size: int | None = None, channels: int | None = None,
             seed: int = 0) -> DataSet:
    """MNIST-format IDX images (e.g. train-images-idx3-ubyte.gz), labelled by the labels file beside it.

    Works for MNIST, Fashion-MNIST and KMNIST files as distributed (gzipped or not); without a
    labels file the set is unlabelled. ``image_size`` resizes (bilinear, antialiased); ``channels=3``
    repeats the grey channel. ``seed`` is not used.
    """
    path = _existing(arg, "idx", folder=False)
    dims, pixels = _read_idx(path, _IDX_IMAGES, "images")
    if dims[0] == 0:
        raise GenlabError(f"{path} holds no images (its header says 0 items)")
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, H, W)
    size = None if image_size is None else positive_int(image_size, "image_size", str(path), minimum=2)
    x = set_channels(resize_images(x, size), check_channels(channels, str(path)))
    y, meta = None, {"source": str(path)}
    found = labels_file(path)
    if found is not None:
        _, labels = _read_idx(found, _IDX_LABELS, "labels")
        if len(labels) != dims[0]:
            raise GenlabError(f"{path} has {dims[0]} images but {found} has {len(labels)} labels")
        y, meta["labels"] = torch.from_numpy(labels.astype(np.int64)), str(found)
    stem = _IMAGES_NAME.sub("images", path.name.removesuffix(".gz"))
    return DataSet(name=short_name("idx", stem), kind="image", x=x, splits=holdout_split(dims[0]),
                   meta=meta, **_labelled(y))
