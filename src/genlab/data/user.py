"""User data: a folder of images (folder:PATH), arrays in an .npz file (npz:PATH) and MNIST-format
IDX files (idx:PATH).

Images become float32 (N, C, H, W) in [0, 1]. Every mistake in the user's data is a GenlabError of one
line naming the file. Sizes are read from headers and checked against a ``SizeBudget`` (``budget.py``)
before anything is read or allocated: npz members from their .npy headers (only x, y and class_names
are read), IDX files from their dims (a gzip stream is inflated in chunks, never past what the header
promises), images from their headers (Pillow opens them lazily).

Splits are fixed whatever the user's seed: a shuffle seeded with 0 puts 5% of the items in val, 5% in
test (at least one each when N >= 3) and the rest in train; a set of one or two items is too small to
hold anything out, so all three splits are the whole set.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import GenlabError
from ..registry import DATASETS
from .base import SPLITS, DataSet
from .budget import SizeBudget, human_bytes, one_line, open_image
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
def read_image(path: str | Path, channels: int, size: int | tuple[int, int] | None,
               budget: SizeBudget | None = None) -> np.ndarray:
    """One image file as float32 (C, H, W) in [0, 1]: converted to ``channels``, transparency laid
    on black, squashed to ``size`` x ``size`` or ``size`` = (H, W) (bilinear) when given. 16-bit grey
    is divided by 65535, other modes by 255. Its size is checked against ``budget`` (default
    ``SizeBudget()``) before it is decoded."""
    with open_image(path, budget) as img:
        try:
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
            raise GenlabError(f"cannot read the image {path}: {one_line(err)}") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, H, W)
    if arr.shape[0] != channels:  # 16-bit or float grey asked for as RGB
        arr = np.repeat(arr, channels, axis=0)
    return np.clip(arr, 0.0, 1.0)


class ImageReader:
    """Reads a batch of images of a streaming folder by index: (B,) -> (B, C, H, W) float32.

    A plain class (not a lambda) so that DataLoader workers can pickle it.
    """

    def __init__(self, files: list[str], channels: int, size: int | None, budget: SizeBudget | None = None):
        self.files, self.channels, self.size, self.budget = files, channels, size, budget

    def __call__(self, index: Tensor) -> Tensor:
        items = [read_image(self.files[i], self.channels, self.size, self.budget) for i in index.tolist()]
        return torch.from_numpy(np.stack(items))  # (B, C, H, W)


class CropReader:
    """Square crops of a folder's images by index: (B,) -> (B, C, crop, crop) float32, never resized.

    Items in ``random_items`` (the train split) get a fresh random crop and a horizontal flip with
    probability 1/2 on every read, drawn from torch's global generator (so a resumed run draws the same
    crops); the others get their centre crop, so validation sees the same pixels each time. Decoded images
    are kept as uint8 when ``cache`` (the folder fits in memory), else decoded again at each read."""

    def __init__(self, files: list[str], channels: int, crop: int, random_items: Tensor,
                 budget: SizeBudget | None = None, *, cache: bool = True):
        self.files, self.channels, self.crop, self.budget = files, channels, crop, budget
        self.random_items = set(random_items.tolist())
        self.cache: dict[int, np.ndarray] | None = {} if cache else None

    def image(self, i: int) -> np.ndarray:
        """Image i as uint8 (C, H, W)."""
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        arr = np.round(read_image(self.files[i], self.channels, None, self.budget) * 255).astype(np.uint8)
        if self.cache is not None:
            self.cache[i] = arr
        return arr

    def __call__(self, index: Tensor) -> Tensor:
        out = torch.empty(len(index), self.channels, self.crop, self.crop)
        for k, i in enumerate(index.tolist()):
            img = self.image(i)
            h, w = img.shape[1:]
            if i in self.random_items:
                top, left, flip = (int(torch.randint(n, ())) for n in (h - self.crop + 1, w - self.crop + 1, 2))
            else:
                top, left, flip = (h - self.crop) // 2, (w - self.crop) // 2, 0
            patch = torch.from_numpy(img[:, top:top + self.crop, left:left + self.crop].astype(np.float32) / 255)
            out[k] = patch.flip(-1) if flip else patch
        return out


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


def _headers(files: list[Path], budget: SizeBudget) -> tuple[list[tuple[int, int]], list[str]]:
    """(width, height) and mode of each image, from its header; each size checked against ``budget``."""
    sizes, modes = [], []
    for f in files:
        with open_image(f, budget) as img:
            sizes.append(img.size)
            modes.append(img.mode)
    return sizes, modes


@DATASETS.register("folder")
def load_folder(arg: str | None = None, *, image_size: int | None = None, channels: int | None = None,
                seed: int = 0, crop: int | None = None, memory_limit: int | None = None,
                budget: SizeBudget | None = None) -> DataSet:
    """A folder of images (PNG, JPEG, ... searched recursively); class sub-folders give labels.

    With two or more sub-folders holding images, their sorted names are the classes. ``channels``
    defaults to 1 when every image is grey, else 3. Without ``image_size`` all images must share one
    size; with it they are squashed to image_size x image_size (bilinear). Sets whose float32 tensor
    fits in ``memory_limit`` bytes (default ``MEMORY_LIMIT``, 2 GiB, and at most ``budget.max_bytes``)
    are loaded into memory; larger ones are streamed: ``x`` is None and ``read`` loads batches by index.
    With ``crop``, images of any sizes (each at least crop x crop) are items of shape (C, crop, crop):
    random crops in the train split, centre crops in val and test (``CropReader``), read in the training
    process. Every image's size is checked from its header against ``budget`` first. ``seed`` is not used.
    """
    budget = budget or SizeBudget()
    root = _existing(arg, "folder", folder=True)
    files, labels, classes = _find_images(root)
    budget.check_items(len(files), str(root))
    budget.check_classes(len(classes or ()), f"{root} (one per class sub-folder)")
    sizes, modes = _headers(files, budget)
    channels = check_channels(channels, str(root)) or (1 if all(m in GREY_MODES for m in modes) else 3)
    if crop is not None:
        return _cropped_folder(root, files, labels, classes, sizes, channels, crop, image_size, memory_limit, budget)
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
    limit = min(MEMORY_LIMIT if memory_limit is None else memory_limit, budget.max_bytes)
    common = dict(name=short_name("folder", root.resolve().name), kind="image",
                  y=None if labels is None else torch.tensor(labels, dtype=torch.int64),
                  splits=holdout_split(len(files)), num_classes=None if classes is None else len(classes),
                  class_names=classes, meta={"files": names, "root": str(root)})
    if len(files) * channels * height * width * 4 > limit:
        return DataSet(x=None, length=len(files), item_shape=(channels, height, width),
                       read=ImageReader(names, channels, size, budget), **common)
    x = torch.empty(len(files), channels, height, width)  # (N, C, H, W)
    for i, f in enumerate(names):
        x[i] = torch.from_numpy(read_image(f, channels, size, budget))
    return DataSet(x=x, **common)


def _cropped_folder(root: Path, files: list[Path], labels, classes, sizes: list[tuple[int, int]], channels: int,
                    crop: int, image_size: int | None, memory_limit: int | None, budget: SizeBudget) -> DataSet:
    """``load_folder`` with ``crop``: a streaming set of crops (``CropReader``), its images decoded once and
    kept as uint8 when they fit in the memory limit."""
    crop = positive_int(crop, "crop", str(root), minimum=2)
    if image_size is not None:
        raise GenlabError("data.crop and data.image_size exclude each other: crops are never resized")
    small = next((i for i, (w, h) in enumerate(sizes) if min(w, h) < crop), None)
    if small is not None:
        w, h = sizes[small]
        raise GenlabError(f"{files[small]} is {w}x{h}, smaller than data.crop={crop} on a side")
    limit = min(MEMORY_LIMIT if memory_limit is None else memory_limit, budget.max_bytes)
    names = [str(f) for f in files]
    splits = holdout_split(len(files))
    cache = sum(w * h for w, h in sizes) * channels <= limit
    return DataSet(name=short_name("folder", root.resolve().name), kind="image", x=None, length=len(files),
                   item_shape=(channels, crop, crop), read_workers=0,
                   read=CropReader(names, channels, crop, splits["train"], budget, cache=cache),
                   y=None if labels is None else torch.tensor(labels, dtype=torch.int64), splits=splits,
                   num_classes=None if classes is None else len(classes), class_names=classes,
                   meta={"files": names, "root": str(root), "crop": crop})


def folder_images(path: str | Path, channels: int | None = None, budget: SizeBudget | None = None) -> list[Tensor]:
    """Every image of a folder (sorted, searched recursively) at its own size, (C, H, W) float32 in [0, 1]:
    what a codec is evaluated on. ``channels`` defaults to 1 when every image is grey, else 3."""
    budget = budget or SizeBudget()
    root = _existing(str(path), "folder", folder=True)
    files, _, _ = _find_images(root)
    budget.check_items(len(files), str(root))
    sizes, modes = _headers(files, budget)
    channels = check_channels(channels, str(root)) or (1 if all(m in GREY_MODES for m in modes) else 3)
    budget.check_bytes(4 * channels * sum(w * h for w, h in sizes), f"the images of {root} as float32")
    return [torch.from_numpy(read_image(f, channels, None, budget)) for f in files]


# --- arrays ------------------------------------------------------------------------------------
_NPY_MAGIC = b"\x93NUMPY"
_NPZ_ARRAYS = ("x", "y", "class_names")  # the arrays of an .npz that are read; any others are not


@dataclass(frozen=True)
class StoredArray:
    """One array of an .npz (a zip ``member``) or .npy file (``member`` None), known from its header."""

    path: Path
    member: str | None
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: no overflow

    def describe(self) -> str:
        return f"{' x '.join(map(str, self.shape))} {self.dtype}"

    def read(self) -> np.ndarray:
        """The array (its header was checked: at most ``nbytes`` are allocated, never a pickle)."""
        try:
            with ExitStack() as stack:
                if self.member is None:
                    f = stack.enter_context(open(self.path, "rb"))
                else:
                    f = stack.enter_context(stack.enter_context(zipfile.ZipFile(self.path)).open(self.member))
                return np.lib.format.read_array(f, allow_pickle=False)
        except Exception as err:  # zip, zlib, bz2, lzma and numpy raise many types for a corrupt member
            raise GenlabError(f"cannot read {self.key} in {self.path}: {one_line(err)}") from None


def _npy_header(f, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header (``f`` is left at the first data byte)."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    except Exception as err:  # a member that is not an array, or a corrupt header
        raise GenlabError(f"{where} is not a .npy array: {one_line(err)}") from None
    if dtype.hasobject:
        raise GenlabError(f"{where} holds Python objects, which genlab never loads (loading them would "
                          f"unpickle code); save plain numeric arrays")
    if any(d < 0 for d in shape):
        raise GenlabError(f"{where} is corrupt: its header declares the shape {shape}")
    return tuple(shape), dtype


def _stored(path: Path, member: str | None, key: str, f, size: int) -> StoredArray:
    """The array whose file (or zip member) ``f`` holds ``size`` bytes, if its header fits them."""
    where = f"{key} in {path}" if member is not None else str(path)
    shape, dtype = _npy_header(f, where)
    array = StoredArray(path, member, key, shape, dtype)
    room = size - f.tell()
    if array.nbytes > room:
        raise GenlabError(f"{path}: {key}'s header declares shape {shape} {dtype} ({human_bytes(array.nbytes)}) "
                          f"but the file holds only {max(room, 0)} bytes for it")
    return array


_ZIP_METHODS = {zipfile.ZIP_STORED: "none", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                zipfile.ZIP_LZMA: "lzma"}


def _check_compression(info: zipfile.ZipInfo, where: str) -> None:
    """Only the methods numpy writes (np.savez: stored, np.savez_compressed: deflate). zipfile caps what a
    deflated member inflates per read, but hands a bzip2 or lzma decompressor whole 4 KB chunks without a
    cap: 4 KB of bzip2 inflate to gigabytes in one call, before any size can be checked."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        method = _ZIP_METHODS.get(info.compress_type, f"method {info.compress_type}")
        raise GenlabError(f"{where} is compressed with {method}; genlab reads .npz members stored or deflated, "
                          f"as np.savez and np.savez_compressed write them")


def stored_arrays(path: Path, budget: SizeBudget, keys: tuple[str, ...] = _NPZ_ARRAYS) -> dict[str, StoredArray]:
    """The arrays named ``keys`` in an .npz file (an .npy file is ``x`` alone), from their headers only.

    Each header is checked against the bytes the file (or zip member, by its declared uncompressed size,
    which zipfile never reads past) holds for it, and their sizes against ``budget.max_bytes``.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
            if magic == _NPY_MAGIC:
                f.seek(0)
                arrays = {"x": _stored(path, None, "x", f, os.fstat(f.fileno()).st_size)}
            elif magic.startswith(b"PK"):
                with zipfile.ZipFile(f) as z:
                    members = {info.filename.removesuffix(".npy"): info for info in z.infolist()}
                    if "x" not in members:
                        raise GenlabError(f"{path} has no array named 'x' (found: "
                                          f"{', '.join(sorted(members)) or 'none'})")
                    arrays = {}
                    for key in (k for k in keys if k in members):
                        _check_compression(members[key], f"{key} in {path}")
                        with z.open(members[key]) as member:
                            arrays[key] = _stored(path, members[key].filename, key, member,
                                                  members[key].file_size)
            else:
                raise GenlabError(f"cannot read {path} as an .npz file: it is neither a zip archive (.npz) "
                                  f"nor an .npy file")
    except GenlabError:
        raise
    except Exception as err:  # a corrupt zip: zipfile raises several types
        raise GenlabError(f"cannot read {path} as an .npz file: {one_line(err)}") from None
    for key, array in arrays.items():
        budget.check_bytes(array.nbytes, f"{path}: {key} holds {array.describe()} values")
    budget.check_bytes(sum(a.nbytes for a in arrays.values()), f"{path}: {', '.join(arrays)} hold values")
    return arrays


def _image_layout(shape: tuple[int, ...], path: Path) -> tuple[tuple[int, int, int, int], bool]:
    """(N, H, W), (N, C, H, W) or (N, H, W, C) with C in {1, 3} -> ((N, C, H, W), channels last?)."""
    if len(shape) == 3:
        return (shape[0], 1, shape[1], shape[2]), False
    if len(shape) == 4 and shape[1] not in (1, 3) and shape[3] in (1, 3):
        return (shape[0], shape[3], shape[1], shape[2]), True
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise GenlabError(f"x in {path} has shape {shape}; expected (N, D) points or images shaped "
                          f"(N, H, W), (N, C, H, W) or (N, H, W, C) with C = 1 or 3")
    return shape, False


def _images_from_array(a: np.ndarray, path: Path) -> Tensor:
    """(N, H, W), (N, C, H, W) or (N, H, W, C) with C in {1, 3} -> float32 (N, C, H, W) in [0, 1]."""
    (n, c, h, w), channels_last = _image_layout(a.shape, path)
    a = a.transpose(0, 3, 1, 2) if channels_last else a.reshape(n, c, h, w)  # (N, C, H, W)
    if a.dtype in (np.uint8, np.uint16, np.bool_):
        out = a.astype(np.float32)
        out /= {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(a.dtype, 1.0)
        return torch.from_numpy(out)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
        raise GenlabError(f"x in {path} has values in [{lo:.4g}, {hi:.4g}]; images must be uint8 (0..255) "
                          f"or floats in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _check_labels_header(y: StoredArray, n: int, path: Path) -> None:
    """y must be (N,) or (N, 1) whole numbers: integers or floats (checked for values once read)."""
    count = y.shape[0] if len(y.shape) == 1 or y.shape[1:] == (1,) else f"an array of shape {y.shape}"
    if count != n:
        raise GenlabError(f"{path}: x has {n} items but y has {count}")
    if y.dtype.kind not in "iuf":
        raise GenlabError(f"{path}: y must hold whole-number class labels >= 0 (found dtype {y.dtype})")


def _labels(y: np.ndarray, path: Path | str, budget: SizeBudget) -> Tensor:
    """Labels as int64 (N,), checked: finite whole numbers in [0, budget.max_classes)."""
    y = y.reshape(-1)
    if not len(y):
        return torch.from_numpy(y.astype(np.int64))
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise GenlabError(f"{path}: y must hold finite whole-number class labels (found NaN or infinity)")
    if y.min() < 0:
        raise GenlabError(f"{path}: y must hold class labels >= 0 (found {y.min()})")
    if y.dtype.kind == "f" and (y != np.round(y)).any():
        raise GenlabError(f"{path}: y must hold whole-number class labels (found {y[y != np.round(y)][0]})")
    budget.check_label(int(y.max()), f"{path}: y")
    return torch.from_numpy(y.astype(np.int64))


def _labelled(y: Tensor | None, names=None) -> dict:
    if y is None:
        return {"y": None}
    k = int(y.max()) + 1 if len(y) else 0
    names = [str(c) for c in names] if names is not None and len(names) == k else [str(c) for c in range(k)]
    return {"y": y, "num_classes": k, "class_names": names}


@DATASETS.register("npz")
def load_npz(arg: str | None = None, *, image_size: int | None = None, channels: int | None = None,
             seed: int = 0, budget: SizeBudget | None = None) -> DataSet:
    """Arrays from an .npz file: ``x`` images (uint8 or floats in [0, 1]) or (N, D) points, optional ``y``.

    Images may be (N, H, W), (N, C, H, W) or channels-last (N, H, W, C) with C = 1 or 3; an optional
    ``class_names`` array names the labels; other arrays in the file are not read. ``image_size``
    resizes (bilinear, antialiased) and ``channels`` converts images; points are kept as they are.
    Shapes, dtypes and sizes are checked from the headers against ``budget`` before any array is
    read. ``seed`` is not used.
    """
    budget = budget or SizeBudget()
    path = _existing(arg, "npz", folder=False)
    stored = stored_arrays(path, budget)
    shape, dtype = stored["x"].shape, stored["x"].dtype
    if len(shape) < 2 or shape[0] == 0:
        raise GenlabError(f"x in {path} has shape {shape}; expected (N, D) points or (N, ...) images")
    if 0 in shape:
        raise GenlabError(f"x in {path} has shape {shape}: "
                          f"{'the points have no coordinates' if len(shape) == 2 else 'the images have no pixels'}")
    if dtype.kind not in "biuf":
        raise GenlabError(f"x in {path} has dtype {dtype}; use uint8 or floats in [0, 1] for images, "
                          f"real numbers for points")
    budget.check_items(shape[0], f"{path}: x")
    if "y" in stored:
        _check_labels_header(stored["y"], shape[0], path)
    names = stored.get("class_names")
    if names is not None and (len(names.shape) != 1 or names.dtype.kind not in "USiuf"):
        raise GenlabError(f"{path}: class_names must be a 1-D array of names (found {names.describe()})")
    if names is not None:
        budget.check_classes(names.shape[0], f"{path}: class_names")
    if len(shape) == 2:
        if image_size is not None or channels is not None:
            raise GenlabError(f"{path} holds (N, D) points: image_size and channels do not apply")
        budget.check_tensor(shape, f"{path}: x")
        a = stored["x"].read()
        if not np.isfinite(a).all():
            raise GenlabError(f"x in {path} must hold finite numbers")
        x, kind = torch.from_numpy(a.astype(np.float32)), "points"
    else:
        (n, c, h, w), _ = _image_layout(shape, path)
        budget.check_image(w, h, f"an image in {path}")
        size = None if image_size is None else positive_int(image_size, "image_size", str(path), minimum=2)
        channels = check_channels(channels, str(path))
        budget.check_tensor((n, max(c, channels or c), h, w), f"{path}: x")
        if size is not None:
            budget.check_tensor((n, channels or c, size, size), f"{path} with image_size={size}")
        x = _images_from_array(stored["x"].read(), path)
        x, kind = set_channels(resize_images(x, size), channels), "image"
    y = _labels(stored["y"].read(), path, budget) if "y" in stored else None
    return DataSet(name=short_name("npz", path.stem), kind=kind, x=x, splits=holdout_split(len(x)),
                   meta={"source": str(path)},
                   **_labelled(y, None if names is None else names.read()))


# --- IDX (MNIST format) ------------------------------------------------------------------------
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801
_IMAGES_NAME = re.compile(r"images([-.])idx3([-.])ubyte")
_READ_CHUNK = 1 << 24  # bytes read (and at most inflated) at a time


def _read_idx(path: Path, magic: int, what: str,
              check: Callable[[tuple[int, ...]], None]) -> tuple[tuple[int, ...], np.ndarray]:
    """The dims and the uint8 payload of an IDX file (gzipped or not), checked against its header.

    ``check(dims)`` vets the sizes the header declares before anything else is read; the payload is then
    read (a gzip stream inflated) in chunks into one array of exactly that size, and one byte more
    means the file is longer than its header says: a gzip bomb is never inflated past its header.
    """
    try:
        with ExitStack() as stack:
            f = stack.enter_context(open(path, "rb"))
            gzipped = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            if gzipped:
                f = stack.enter_context(gzip.GzipFile(fileobj=f, mode="rb"))
            head = f.read(4)
            found = int.from_bytes(head, "big") if len(head) == 4 else None
            if found != magic:
                shown = "none: the file is shorter than 4 bytes" if found is None else f"0x{found:08x}"
                raise GenlabError(f"{path} is not an IDX {what} file (magic {shown}; expected 0x{magic:08x})")
            ndim = magic & 0xFF
            header = 4 + 4 * ndim
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise GenlabError(f"{path} is truncated: {4 + len(raw_dims)} bytes, shorter than its "
                                  f"{header}-byte header")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            check(dims)
            payload = np.empty(math.prod(dims), dtype=np.uint8)  # Python ints: (2**31, 2**31, 4) is not 0
            view, got = memoryview(payload), 0
            while got < len(payload) and (n := f.readinto(view[got:got + _READ_CHUNK])):
                got += n
            longer = got == len(payload) and f.read(1) != b""
    except (OSError, EOFError, zlib.error) as err:
        raise GenlabError(f"cannot read {path}: {one_line(err)}") from None
    if got < len(payload) or longer:
        state = "truncated" if got < len(payload) else "longer than its header says"
        holds = "" if longer else f" but the file holds {header + got}{' once inflated' if gzipped else ''}"
        raise GenlabError(f"{path} is {state}: it promises {' x '.join(map(str, dims))} bytes of data "
                          f"({header + len(payload)} bytes in all){holds}")
    return dims, payload.reshape(dims)


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
             seed: int = 0, budget: SizeBudget | None = None) -> DataSet:
    """MNIST-format IDX images (e.g. train-images-idx3-ubyte.gz), labelled by the labels file beside it.

    Works for MNIST, Fashion-MNIST and KMNIST files as distributed (gzipped or not); without a
    labels file the set is unlabelled. ``image_size`` resizes (bilinear, antialiased); ``channels=3``
    repeats the grey channel. The header's dims are checked against ``budget`` before the data is
    read. ``seed`` is not used.
    """
    budget = budget or SizeBudget()
    path = _existing(arg, "idx", folder=False)
    size = None if image_size is None else positive_int(image_size, "image_size", str(path), minimum=2)
    channels = check_channels(channels, str(path))

    def check_images(dims: tuple[int, ...]) -> None:
        n, h, w = dims
        if n == 0:
            raise GenlabError(f"{path} holds no images (its header says 0 items)")
        budget.check_items(n, str(path))
        budget.check_image(w, h, f"an image in {path}")
        budget.check_bytes(n * h * w, f"{path}: {n} x {h} x {w} uint8 values")
        budget.check_tensor((n, 1, h, w), str(path))  # as read, then resized and converted
        budget.check_tensor((n, channels or 1, size or h, size or w),
                            str(path) if size is None else f"{path} with image_size={size}")

    dims, pixels = _read_idx(path, _IDX_IMAGES, "images", check_images)
    x = torch.from_numpy(pixels).unsqueeze(1).float().div_(255.0)  # (N, 1, H, W)
    x = set_channels(resize_images(x, size), channels)
    y, meta = None, {"source": str(path)}
    found = labels_file(path)
    if found is not None:
        def check_labels(label_dims: tuple[int, ...]) -> None:
            if label_dims[0] != dims[0]:
                raise GenlabError(f"{path} has {dims[0]} images but {found} has {label_dims[0]} labels")

        _, labels = _read_idx(found, _IDX_LABELS, "labels", check_labels)
        y, meta["labels"] = _labels(labels, found, budget), str(found)
    stem = _IMAGES_NAME.sub("images", path.name.removesuffix(".gz"))
    return DataSet(name=short_name("idx", stem), kind="image", x=x, splits=holdout_split(dims[0]),
                   meta=meta, **_labelled(y))
