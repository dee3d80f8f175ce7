"""A user's image files as a model's input: converted to its channels and resized to its size.

One command's output is the next one's input: a PNG written by ``genlab sample`` (or any picture)
goes to ``transform``, ``project``, ``interpolate --a`` and ``compress`` as it is. Files are read
exactly as a folder of training images is (``data.user.read_image``): RGB -> grey by luminance
(ITU-R 601), grey -> RGB by repeating the channel, transparency laid on black, and any other size
squashed to the model's H x W (bilinear, antialiased; no crop, as ``folder:`` data with
``image_size``). Each conversion is logged at INFO (on stderr from the CLI), e.g.
``one.png: 288x288 RGB -> 32x32 gray``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from .user import ALPHA_MODES, read_image

log = logging.getLogger(__name__)

_MODE_NAMES = {"1": "1-bit", "L": "gray", "P": "palette", "PA": "palette+alpha", "RGB": "RGB", "LA": "gray+alpha",
               "La": "gray+alpha", "RGBA": "RGBA", "RGBa": "RGBA", "I": "32-bit gray", "I;16": "16-bit gray",
               "I;16L": "16-bit gray", "I;16B": "16-bit gray", "I;16N": "16-bit gray", "F": "float gray"}


def conversion_note(name: str, image: Image.Image, channels: int, size: tuple[int, int]) -> str | None:
    """``"one.png: 288x288 RGB -> 32x32 gray"`` for an opened ``image`` fitted to ``channels`` and
    ``size`` = (H, W); None when it already is a model input as it stands."""
    source = _MODE_NAMES.get(image.mode, image.mode)
    target = "gray" if channels == 1 else "RGB"
    width, height = image.size
    if source == target and (height, width) == tuple(size):
        return None
    transparent = image.mode in ALPHA_MODES | {"PA"} or (image.mode == "P" and "transparency" in image.info)
    alpha = " (transparency laid on black)" if transparent else ""
    return f"{name}: {width}x{height} {source} -> {size[1]}x{size[0]} {target}{alpha}"


def load_user_image(path: str | Path, channels: int, size: tuple[int, int] | None = None) -> Tensor:
    """One image file -> (C, H, W) float32 in [0, 1] with ``channels``, at ``size`` = (H, W) when
    given (else its own size); a bad file is a GenlabError of one line."""
    x = torch.from_numpy(read_image(path, channels, size))  # (C, H, W)
    with Image.open(path) as img:  # the header again (read_image decoded it): what the file was
        note = conversion_note(Path(path).name, img, channels, tuple(x.shape[1:]))
    if note:
        log.info(note)
    return x


def load_user_images(paths: Sequence[str | Path], shape: Sequence[int]) -> Tensor:
    """Image files -> (N, C, H, W) float32 in [0, 1] at a model's item ``shape`` (C, H, W)."""
    c, h, w = shape
    return torch.stack([load_user_image(p, c, (h, w)) for p in paths])
