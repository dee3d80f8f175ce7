"""``genlab compress`` / ``decompress`` / ``rd``: learned compression from the command line (the work is in
``genlab.compression``).

Every check runs before anything is written; a decompressed file set is decoded in memory in full
and only then written, each PNG atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..compression.ladder import load_codec
from ..errors import GenlabError
from .common import out


def read_image(path: Path, channels: int) -> torch.Tensor:
    """A PNG (or any Pillow image) -> (C, H, W) in [0, 1], converted to ``channels``."""
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            a = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise GenlabError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise GenlabError(f"cannot read image {path} ({err})") from None
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return torch.from_numpy(a.copy()).float() / 255


def _png_bytes(x: torch.Tensor) -> bytes:
    from ..compression.rd import to_uint8

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buffer, format="PNG")
    return buffer.getvalue()


def cmd_compress(args) -> int:
    from ..compression.codec import compress

    target = Path(args.output).expanduser()
    if target.suffix.lower() != ".glc":
        raise GenlabError(f"output {target} must end in .glc")
    from ..compression.ladder import run_folders

    (run,) = run_folders(args.run, args.quality, default="middle")
    model, config = load_codec(str(run), args.checkpoint)
    if args.quality is not None and args.quality != model.quality:
        raise GenlabError(f"{args.run} is quality {model.quality}, not -q {args.quality}; "
                          "pass the run folder of that quality, or its ladder")
    paths = [Path(p).expanduser() for p in args.images]
    names = [p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GenlabError(f"two inputs share the name {dupes[0]!r}: decompress would write one over the other")
    images = [read_image(p, model.data_info.shape[0]) for p in paths]
    data = compress(model, images, names=names)
    from ..runs.checkpoint import atomic_write_bytes

    atomic_write_bytes(target, data)
    pixels = sum(x.shape[1] * x.shape[2] for x in images)
    out(f"wrote {target}: {len(images)} image(s), quality {model.quality}, {len(data)} bytes, "
         f"{8 * len(data) / pixels:.3f} bpp")
    return 0


def cmd_decompress(args) -> int:
    from ..compression import format as glc
    from ..compression.codec import decompress
    from ..runs.checkpoint import atomic_write_bytes

    path = Path(args.file).expanduser()
    if not path.is_file():
        raise GenlabError(f"{path} does not exist")
    data = path.read_bytes()
    parsed = glc.unpack(data, source=str(path))
    if args.run is None:
        raise GenlabError(f"{path} was made by model {parsed.model_id.hex()}; pass --run RUN_FOLDER")
    from ..compression.ladder import is_ladder, run_folders

    (run,) = run_folders(args.run, parsed.quality if is_ladder(args.run) else None)
    model, _ = load_codec(str(run), args.checkpoint)
    images, names = decompress(model, data, source=str(path))
    files = [(Path(n).name or f"image{i:04d}", x) for i, (n, x) in enumerate(zip(names, images, strict=True))]
    files = [(n if n.lower().endswith(".png") else f"{Path(n).stem}.png", x) for n, x in files]
    encoded = [(n, _png_bytes(x)) for n, x in files]  # everything decoded before anything is written
    outdir = Path(args.output).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise GenlabError(f"{outdir} exists and is not a folder")
    for name, png in encoded:
        atomic_write_bytes(outdir / name, png)
    out(f"wrote {len(encoded)} image(s) to {outdir}")
    return 0


def cmd_rd(args) -> int:
    from ..compression.rd import baseline_curves, bd_rate, codec_point, plot_matched, plot_rd
    from ..runs import data_for_run

    target = Path(args.output).expanduser()
    if target.suffix.lower() != ".png":
        raise GenlabError(f"output {target} must end in .png")
    if args.json and Path(args.json).suffix.lower() != ".json":
        raise GenlabError(f"--json {args.json} must end in .json")
    from ..compression.ladder import run_folders

    models = [load_codec(str(r), args.checkpoint) for path in args.run for r in run_folders(path)]
    data = data_for_run(models[0][1], args.data)
    split = args.split or ("test" if "test" in data.splits else "all")
    x, _ = data.tensors(split, limit=args.n)
    images = list(x)
    genlab = sorted((codec_point(m, images) for m, _ in models), key=lambda p: p["bpp"])
    curves = {"genlab": genlab, **baseline_curves(images)}
    bd = {"vs_jpeg_ecs": bd_rate(genlab, curves["jpeg_ecs"]), "vs_jpeg_file": bd_rate(genlab, curves["jpeg"]),
          "vs_webp": bd_rate(genlab, curves["webp"])}
    name = args.data or models[0][1].data.spec
    plot_rd(curves, target, title=f"{name} {split}, {len(images)} images, per-image averages")
    matched = target.with_name(f"{target.stem}_matched.png")
    plot_matched([m for m, _ in models], images, matched)
    out(f"{'codec':<14}{'quality':>8}{'bpp':>9}{'PSNR dB':>9}")
    for key in ("genlab", "jpeg_ecs", "jpeg", "webp", "png"):
        for p in curves[key]:
            psnr = "lossless" if p["psnr"] is None else f"{p['psnr']:.2f}"
            out(f"{key:<14}{p['quality'] if p['quality'] is not None else '-':>8}{p['bpp']:>9.3f}{psnr:>9}")
    for k, v in bd.items():
        out(f"BD-rate {k}: " + ("no common PSNR range" if v is None else f"{v:+.1f}%"))
    out(f"wrote {target} and {matched} (the same digits at matched bits, JPEG vs genlab)")
    if args.json:
        result = {"data": name, "split": split, "images": len(images), "curves": curves, "bd_rate_percent": bd}
        Path(args.json).expanduser().write_text(json.dumps(result, indent=2))
        out(f"wrote {args.json}")
    return 0
