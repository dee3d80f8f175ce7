"""Size budgets for data: sizes are read from headers and checked before anything is read or allocated.

A small hostile file (a zip or gzip bomb, a header that lies about its shape, a PNG of 12000 x 12000
black pixels) must cost one line and exit code 2, not gigabytes. The budget is ``DataConfig``'s ``max_*``
fields, each overridable with ``--set data.max_...``:

======================  ==========================================================================
``max_pixels``          16,777,216 (4096 x 4096): pixels of one image file, and of each item once resized
``max_side``            8,192: pixels along either side of one image
``max_items``           10,000,000: items in one data set
``max_bytes``           4 GiB: one array after decompression, and the float32 tensor made from it (a
                        load may hold both for a moment: up to about twice this)
``max_classes``         10,000: class labels are whole numbers in [0, max_classes)
======================  ==========================================================================

The defaults admit the built-in sets, 12-megapixel photos and full MNIST-format files (EMNIST ByClass:
814,255 x 28 x 28). Pillow refuses images over 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` whatever the budget.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from ..config import DataConfig
from ..errors import GenlabError

_DEFAULT = DataConfig()


def one_line(err: Exception) -> str:
    """An exception's message on one line (Pillow's, zipfile's and numpy's can span several)."""
    return " ".join(str(err).split()) or type(err).__name__


def _raise(field: str) -> str:
    return f"(--set data.{field}=N raises it)"


def human_bytes(n: int) -> str:
    """``7291200000`` -> ``7.3 GB``."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class SizeBudget:
    """The limits a data set is checked against (see the module docstring); defaults from ``DataConfig``."""

    max_pixels: int = _DEFAULT.max_pixels
    max_side: int = _DEFAULT.max_side
    max_items: int = _DEFAULT.max_items
    max_bytes: int = _DEFAULT.max_bytes
    max_classes: int = _DEFAULT.max_classes

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GenlabError(f"data.{f.name}={value!r} must be a whole number >= 1")

    @classmethod
    def of(cls, config: DataConfig) -> SizeBudget:
        """The budget a run's ``DataConfig`` sets."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    def check_image(self, width: int, height: int, what: str) -> None:
        """An image of ``width`` x ``height`` pixels: at least 1 x 1, within max_side and max_pixels."""
        size = f"{what} is {width}x{height} pixels"
        if width < 1 or height < 1:
            raise GenlabError(f"{size}: it has no pixels")
        if width * height > self.max_pixels:
            raise GenlabError(f"{size}, more than data.max_pixels={self.max_pixels} {_raise('max_pixels')}")
        if max(width, height) > self.max_side:
            raise GenlabError(f"{size}, more than data.max_side={self.max_side} on a side {_raise('max_side')}")

    def check_items(self, n: int, what: str) -> None:
        if n > self.max_items:
            raise GenlabError(f"{what} holds {n} items, more than data.max_items={self.max_items} "
                              f"{_raise('max_items')}")

    def check_bytes(self, nbytes: int, what: str) -> None:
        """``what`` names the values that take ``nbytes``, e.g. "x: 9300000 x 28 x 28 uint8 values"."""
        if nbytes > self.max_bytes:
            raise GenlabError(f"{what} that take {human_bytes(nbytes)}, more than data.max_bytes={self.max_bytes} "
                              f"({human_bytes(self.max_bytes)}) {_raise('max_bytes')}")

    def check_tensor(self, shape: tuple[int, ...], what: str) -> None:
        """The float32 tensor of ``shape`` (N, ...) that a loader is about to make: its items and bytes."""
        self.check_items(shape[0], what)
        self.check_bytes(4 * math.prod(shape), f"{what}: {' x '.join(map(str, shape))} float32 values")

    def check_classes(self, count: int, what: str) -> None:
        if count > self.max_classes:
            raise GenlabError(f"{what} has {count} classes, more than data.max_classes={self.max_classes} "
                              f"{_raise('max_classes')}")

    def check_label(self, largest: int, what: str) -> None:
        if largest >= self.max_classes:
            raise GenlabError(f"{what} holds the label {largest}, not below data.max_classes={self.max_classes} "
                              f"{_raise('max_classes')}")


def open_image(source: str | Path | BinaryIO, budget: SizeBudget | None = None, *, name: str | None = None,
               formats: tuple[str, ...] | None = None) -> Image.Image:
    """An image file (a path or a binary file object) opened lazily, its size checked against ``budget``.

    Pillow reads only the header here: the pixels are decoded later, by ``load()``, ``convert()`` or
    ``np.asarray``, once this has returned. Use it as a context manager. An unreadable file, a size over
    the budget or an empty image is a one-line GenlabError naming ``name`` (default: the path).
    """
    budget = budget or SizeBudget()
    name = str(source) if name is None else name
    try:
        with warnings.catch_warnings():  # Pillow warns over MAX_IMAGE_PIXELS; the budget decides instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source, formats=formats)
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise GenlabError(f"the image {name} has more than {limit} pixels: more than data.max_pixels="
                          f"{budget.max_pixels} and more than Pillow opens (2 x PIL.Image.MAX_IMAGE_PIXELS)") \
            from None
    except Exception as err:  # Pillow raises several types for unreadable data
        raise GenlabError(f"cannot read the image {name}: {one_line(err)}") from None
    try:
        budget.check_image(*img.size, f"the image {name}")
    except GenlabError:
        img.close()
        raise
    return img
