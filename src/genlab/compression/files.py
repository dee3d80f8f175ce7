"""Files at the codec's edges: image headers checked before a pixel is decoded, and a decoded file set
written into a folder all or nothing.

``compress`` checks every name and every image's header (its pixel count, ``format.MAX_IMAGE_PIXELS``)
before decoding a pixel; ``decompress`` decodes the whole file in memory and only then writes, each PNG
atomically, removing what it wrote if a write fails.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from torch import Tensor

from ..errors import GenlabError
from ..runs.checkpoint import atomic_write_bytes
from . import format as glc


@contextmanager
def _opened(path: Path):
    """A Pillow image opened lazily (header read, pixels not decoded), refused with one line if it is not
    an image or holds more pixels than a .glc image may (``format.MAX_IMAGE_PIXELS``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap is far lower
            img = Image.open(path)
    except FileNotFoundError:
        raise GenlabError(f"image {path} does not exist") from None
    except Image.DecompressionBombError as err:
        raise GenlabError(f"image {path} is too large to compress ({err}); genlab codes images of at most "
                          f"{glc.MAX_IMAGE_PIXELS:,} pixels") from None
    except Exception as err:  # any failure to open a user's file is a bad file
        raise GenlabError(f"cannot read image {path} ({_one_line(err)})") from None
    with img:
        w, h = img.size
        if h * w > glc.MAX_IMAGE_PIXELS:
            raise GenlabError(f"image {path} is {w}x{h} = {w * h:,} pixels; genlab codes images of at most "
                              f"{glc.MAX_IMAGE_PIXELS:,} pixels (2048x2048)")
        yield img


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding its pixels (see ``_opened``)."""
    with _opened(path) as img:
        return img.height, img.width


def check_inputs(paths: Sequence[Path]) -> list[str]:
    """The names a .glc file stores for these image files, after checking the names (unique, safe) and
    every header's pixel count: nothing is decoded before all of them pass."""
    names = [p.name for p in paths]
    glc.check_names(names)
    glc.check_sizes([(h, w, 1) for h, w in map(image_size, paths)])
    return names


def png_bytes(x: Tensor) -> bytes:
    """One image (C, H, W) in [0, 1] -> PNG bytes."""
    from .rd import to_uint8

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_images(outdir: Path, names: Sequence[str], images: Sequence[Tensor]) -> int:
    """Decoded images under their stored names (as ``.png``) in ``outdir``: all are encoded first, then
    each is written atomically; if one write fails, the files this call created (and ``outdir`` if it
    made it) are removed and one line is raised. Returns the number of files written."""
    # names were checked by unpack (no path, unique PNG names)
    files = [(glc.png_name(n), png_bytes(x)) for n, x in zip(names, images, strict=True)]
    for name, _ in files:
        if (outdir / name).is_dir():
            raise GenlabError(f"{outdir / name} is a folder; cannot write the image {name} there")
    made_dir = not outdir.exists()
    created: list[Path] = []
    try:
        for name, data in files:
            target = outdir / name
            existed = target.exists()
            atomic_write_bytes(target, data)
            if not existed:
                created.append(target)
    except BaseException as err:
        for p in created:
            p.unlink(missing_ok=True)
        if made_dir and outdir.is_dir() and not any(outdir.iterdir()):
            outdir.rmdir()
        if isinstance(err, OSError):
            raise GenlabError(f"cannot write into {outdir} ({err.strerror or _one_line(err)}); the images "
                              "this command had written there were removed") from None
        raise
    return len(files)
