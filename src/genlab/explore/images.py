"""Images at the explorer's edges: tensors -> PNG data URLs, and uploaded bytes -> a model's input.

Uploads are untrusted: the body is size-limited before it gets here, Pillow reads only the formats
listed in ``FORMATS``, and the size is checked from the header before any pixel is decoded
(a small file can declare a huge image: a decompression bomb). The image is reduced as it is
decoded: a JPEG decodes at 1/2, 1/4 or 1/8 scale (``draft``), any other is box-reduced right after
decoding, before any conversion copies it, so an upload costs at most one full-size decode
(``MAX_SIDE``² pixels of its own mode) and, when it has transparency, one premultiplied copy for
the reduction. Every failure is a ``BadImage`` with a message the page
shows as it is.
"""

from __future__ import annotations

import base64
import io
import logging

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..data.user_images import conversion_note

log = logging.getLogger(__name__)
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
MAX_SIDE = 4096  # pixels per side of an uploaded image
WORK_SIDE = 256  # an upload is reduced to about this side (at least 4x the model's) before any conversion
REDUCIBLE = ("L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr")  # modes Image.reduce averages correctly


class BadImage(ValueError):
    """An upload that is not an image the explorer accepts (the message is shown on the page)."""


def png_bytes(x: Tensor) -> bytes:
    """One image (C, H, W) in [0, 1] -> PNG bytes (grey for one channel, RGB for three)."""
    arr = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()  # (C, H, W)
    img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_url(x: Tensor) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(x)).decode()


def data_urls(x: Tensor) -> list[str]:
    """Images (N, C, H, W) -> N PNG data URLs."""
    return [data_url(im) for im in x]


def decode_upload(payload: bytes, shape: tuple[int, ...], *, centre: bool = False) -> Tensor:
    """Uploaded bytes -> one image (1, C, H, W) in [0, 1] at the model's size.

    ``centre``: a drawing (light ink on a dark ground), cropped to its ink, scaled into a box of 20/28
    of the side and centred on its centre of mass, as the MNIST digits were prepared.
    """
    if not payload:
        raise BadImage("the upload is empty")
    c, h, w = shape
    try:
        img = Image.open(io.BytesIO(payload), formats=FORMATS)
    except Exception:  # Pillow raises several types for unreadable data
        raise BadImage("not an image the explorer reads (PNG, JPEG, GIF, BMP or WebP)") from None
    with img:
        width, height = img.size
        if width > MAX_SIDE or height > MAX_SIDE:
            raise BadImage(f"the image is {width}x{height} pixels; the explorer takes at most "
                           f"{MAX_SIDE}x{MAX_SIDE}")
        # an uploaded file is converted as a file given to a command is, and said so (drawings always are)
        note = None if centre else conversion_note("upload", img, c, (h, w))
        work = max(WORK_SIDE, 4 * max(h, w))
        try:
            img = reduced(img, work)
            img = img.convert("RGBA") if img.mode == "LA" else img
            if img.mode == "RGBA":  # transparent pixels count as the dark ground
                ground = Image.new("RGBA", img.size, (0, 0, 0, 255))
                img = Image.alpha_composite(ground, img)
            img = img.convert("L" if c == 1 else "RGB")
        except Exception as err:
            raise BadImage(f"the image could not be decoded ({type(err).__name__})") from None
        if centre:
            img = _centre_ink(img, h)
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if note:
        log.info(note)
    return torch.from_numpy(np.ascontiguousarray(arr)).unsqueeze(0)


def reduced(img: Image.Image, side: int) -> Image.Image:
    """An opened image decoded and shrunk by an integer factor to about ``side`` pixels on its
    longer side (never below): a JPEG by decoding at a smaller scale, any other by a box reduction
    right after decoding. Palette, 1-bit and 16-bit images are first converted to a mode that
    averages (RGBA for a transparent palette)."""
    img.draft(None, (side, side))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale; others ignore it
    img.load()
    if img.mode not in REDUCIBLE:
        transparent = img.mode == "PA" or (img.mode == "P" and "transparency" in img.info)
        img = img.convert("RGBA" if transparent else "L" if img.mode == "1" or img.mode.startswith("I;16")
                          else "RGB")
    factor = max(img.size) // side
    return img.reduce(factor) if factor >= 2 else img


def _centre_ink(img: Image.Image, side: int) -> Image.Image:
    """Crop to the ink, fit it into a box of 20/28 of ``side`` and put its centre of mass in the middle."""
    grey = np.asarray(img.convert("L"), dtype=np.float32)
    ink = grey > 0.1 * max(float(grey.max()), 1.0)
    if not ink.any():
        return img.resize((side, side), Image.Resampling.BILINEAR)
    rows, cols = np.where(ink)
    img = img.crop((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    box = max(1, round(side * 20 / 28))
    scale = box / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                     Image.Resampling.LANCZOS)
    small = np.asarray(img.convert("L"), dtype=np.float32)
    mass = small.sum() or 1.0
    cy = (small.sum(1) * np.arange(small.shape[0])).sum() / mass
    cx = (small.sum(0) * np.arange(small.shape[1])).sum() / mass
    canvas = Image.new(img.mode, (side, side), 0)
    canvas.paste(img, (round(side / 2 - cx - 0.5), round(side / 2 - cy - 0.5)))
    return canvas
