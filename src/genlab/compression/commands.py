"""``genlab compress`` / ``decompress`` / ``rd``: learned compression from the command line.

Every check runs before anything is written: ``compress`` checks every name and every image's header
(its pixel count) before decoding a pixel; ``decompress`` decodes the whole file in memory and only then
writes, each PNG atomically, removing what it wrote if a write fails.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from ..errors import GenlabError


def _out(text: str = "") -> None:
    print(text, file=sys.stdout, flush=True)


def _load_codec(run_path: str, which: str = "best"):
    import genlab.models  # noqa: F401  (registration)

    from ..training import load_model, open_run

    model, config = load_model(open_run(run_path), which=which)
    if not hasattr(model, "coding_tables"):
        raise GenlabError(f"{run_path} is a {config.model!r} run, not a codec")
    return model, config


@contextmanager
def _opened(path: Path):
    """A Pillow image opened lazily (header read, pixels not decoded), refused with one line if it is not
    an image or holds more pixels than a .glc image may (``format.MAX_IMAGE_PIXELS``)."""
    from . import format as glc

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


def _png_bytes(x: torch.Tensor) -> bytes:
    from .rd import to_uint8

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buffer, format="PNG")
    return buffer.getvalue()


def cmd_compress(args) -> int:
    from ..data.user_images import load_user_image
    from . import format as glc
    from .codec import compress

    out = Path(args.output).expanduser()
    if out.suffix.lower() != ".glc":
        raise GenlabError(f"output {out} must end in .glc")
    if out.is_dir():
        raise GenlabError(f"output {out} is a folder; name the .glc file to write")
    paths = [Path(p).expanduser() for p in args.images]
    names = [p.name for p in paths]
    glc.check_names(names)
    sizes = [image_size(p) for p in paths]  # every header checked before any pixel is decoded
    glc.check_sizes([(h, w, 1) for h, w in sizes])
    from .ladder import run_folders

    (run,) = run_folders(args.run, args.quality, default="middle")
    model, config = _load_codec(str(run), args.checkpoint)
    if args.quality is not None and args.quality != model.config.quality:
        raise GenlabError(f"{args.run} is quality {model.config.quality}, not -q {args.quality}; "
                          "pass the run folder of that quality, or its ladder")
    images = [load_user_image(p, model.data_info.shape[0], None if model.conv else model.data_info.shape[1:])
              for p in paths]  # a convolutional codec codes any size
    data = compress(model, images, names=names)
    from ..training.checkpoint import atomic_write_bytes

    atomic_write_bytes(out, data)
    pixels = sum(x.shape[1] * x.shape[2] for x in images)
    _out(f"wrote {out}: {len(images)} image(s), quality {model.config.quality}, {len(data)} bytes, "
         f"{8 * len(data) / pixels:.3f} bpp")
    return 0


def _write_files(outdir: Path, files: list[tuple[str, bytes]]) -> None:
    """Writes each (name, bytes) into ``outdir``, each atomically; if one write fails, removes the files
    this call created (and ``outdir`` if it made it) and raises one line."""
    from ..training.checkpoint import atomic_write_bytes

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


def cmd_decompress(args) -> int:
    from . import format as glc
    from .codec import decompress

    path = Path(args.file).expanduser()
    if not path.is_file():
        raise GenlabError(f"{path} does not exist")
    if path.stat().st_size > glc.MAX_FILE_BYTES:
        raise GenlabError(f"{path} is {path.stat().st_size:,} bytes; a .glc file is at most "
                          f"{glc.MAX_FILE_BYTES:,} bytes")
    outdir = Path(args.output).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise GenlabError(f"{outdir} exists and is not a folder")
    data = path.read_bytes()
    parsed = glc.unpack(data, source=str(path))
    if args.run is None:
        raise GenlabError(f"{path} was made by model {parsed.model_id.hex()}; pass --run RUN_FOLDER")
    from .ladder import is_ladder, run_folders

    (run,) = run_folders(args.run, parsed.quality if is_ladder(args.run) else None)
    model, _ = _load_codec(str(run), args.checkpoint)
    images, names = decompress(model, data, source=str(path))
    # names are checked by unpack (no path, unique PNG names); everything is decoded before anything is written
    files = [(glc.png_name(n), _png_bytes(x)) for n, x in zip(names, images, strict=True)]
    _write_files(outdir, files)
    _out(f"wrote {len(files)} image(s) to {outdir}")
    return 0


def cmd_rd(args) -> int:
    from ..commands import data_for_run
    from .rd import baseline_curves, bd_rate, codec_point, plot_matched, plot_rd

    out = Path(args.output).expanduser()
    if out.suffix.lower() != ".png":
        raise GenlabError(f"output {out} must end in .png")
    if args.json and Path(args.json).suffix.lower() != ".json":
        raise GenlabError(f"--json {args.json} must end in .json")
    from .ladder import run_folders

    models = [_load_codec(str(r), args.checkpoint) for path in args.run for r in run_folders(path)]
    data = data_for_run(models[0][1], args.data)
    split = args.split or ("test" if "test" in data.splits else "all")
    x, _ = data.tensors(split, limit=args.n)
    images = list(x)
    genlab = sorted((codec_point(m, images) for m, _ in models), key=lambda p: p["bpp"])
    curves = {"genlab": genlab, **baseline_curves(images)}
    bd = {"vs_jpeg_ecs": bd_rate(genlab, curves["jpeg_ecs"]), "vs_jpeg_file": bd_rate(genlab, curves["jpeg"]),
          "vs_webp": bd_rate(genlab, curves["webp"])}
    name = args.data or models[0][1].data.spec
    plot_rd(curves, out, title=f"{name} {split}, {len(images)} images, per-image averages")
    matched = out.with_name(f"{out.stem}_matched.png")
    plot_matched([m for m, _ in models], images, matched)
    _out(f"{'codec':<14}{'quality':>8}{'bpp':>9}{'PSNR dB':>9}")
    for key in ("genlab", "jpeg_ecs", "jpeg", "webp", "png"):
        for p in curves[key]:
            psnr = "lossless" if p["psnr"] is None else f"{p['psnr']:.2f}"
            _out(f"{key:<14}{p['quality'] if p['quality'] is not None else '-':>8}{p['bpp']:>9.3f}{psnr:>9}")
    for k, v in bd.items():
        _out(f"BD-rate {k}: " + ("no common PSNR range" if v is None else f"{v:+.1f}%"))
    _out(f"wrote {out} and {matched} (the same digits at matched bits, JPEG vs genlab)")
    if args.json:
        result = {"data": name, "split": split, "images": len(images), "curves": curves, "bd_rate_percent": bd}
        Path(args.json).expanduser().write_text(json.dumps(result, indent=2))
        _out(f"wrote {args.json}")
    return 0
