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
from dataclasses import dataclass
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


@dataclass
class Compressed:
    """What ``compress_files`` wrote: the file, its size, the images' pixels and the quality coded at."""

    path: Path
    images: int
    pixels: int
    bytes: int
    quality: int

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / self.pixels


def compress_files(run: str | Path, images: Sequence[str | Path], output: str | Path, *, quality: int | None = None,
                   checkpoint: str = "best") -> Compressed:
    """Image files -> one .glc file at ``output``, coded by the codec ``run`` (a run folder or a ladder
    folder) at ``quality`` (a ladder's level or a variable-rate codec's; default: the middle one). Every name
    and image header is checked before a pixel is decoded; a convolutional codec codes each image at its own
    size, an MLP codec at its one size."""
    from ..data.user_images import load_user_image
    from .codec import compress
    from .ladder import load_codec, run_folders

    target = Path(output).expanduser()
    if target.suffix.lower() != ".glc":
        raise GenlabError(f"output {target} must end in .glc")
    if target.is_dir():
        raise GenlabError(f"output {target} is a folder; name the .glc file to write")
    paths = [Path(p).expanduser() for p in images]
    names = check_inputs(paths)  # every name and header checked before any pixel is decoded
    (folder,) = run_folders(run, quality, default="middle")
    model, _ = load_codec(str(folder), checkpoint)
    if quality is not None:
        if quality not in model.qualities:
            raise GenlabError(f"{run} codes at quality {', '.join(map(str, model.qualities))}, not -q {quality}; "
                              "pass the run folder of that quality, or its ladder")
        model.set_quality(quality)
    shape = model.data_info.shape
    pictures = [load_user_image(p, shape[0], None if model.conv else tuple(shape[1:])) for p in paths]
    data = compress(model, pictures, names=names)
    atomic_write_bytes(target, data)
    return Compressed(target, len(pictures), sum(x.shape[1] * x.shape[2] for x in pictures), len(data),
                      model.quality)


def decompress_file(path: str | Path, output: str | Path, *, run: str | Path | None = None,
                    checkpoint: str = "best") -> tuple[int, Path]:
    """A .glc file -> PNGs under their stored names in the folder ``output``, decoded by the codec ``run``
    (a run folder, or a ladder: the level the file names). Everything is checked and decoded before
    anything is written. Returns (images written, the folder)."""
    from .codec import decompress
    from .ladder import is_ladder, load_codec, run_folders

    path = Path(path).expanduser()
    if not path.is_file():
        raise GenlabError(f"{path} does not exist")
    if path.stat().st_size > glc.MAX_FILE_BYTES:
        raise GenlabError(f"{path} is {path.stat().st_size:,} bytes; a .glc file is at most "
                          f"{glc.MAX_FILE_BYTES:,} bytes")
    outdir = Path(output).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise GenlabError(f"{outdir} exists and is not a folder")
    data = path.read_bytes()
    parsed = glc.unpack(data, source=str(path))
    if run is None:
        raise GenlabError(f"{path} was made by model {parsed.model_id.hex()}; pass --run RUN_FOLDER")
    (folder,) = run_folders(run, parsed.quality if is_ladder(run) else None)
    model, _ = load_codec(str(folder), checkpoint)
    images, names = decompress(model, data, source=str(path))
    return write_images(outdir, names, images), outdir  # everything is decoded before anything is written
