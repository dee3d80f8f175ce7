"""``genlab compress`` / ``decompress`` / ``rd``: learned compression from the command line (the work is in
``genlab.compression``; its checks, ``genlab.compression.files``, run before anything is written).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..compression.ladder import load_codec
from ..errors import GenlabError
from .common import out


def cmd_compress(args) -> int:
    from ..compression.codec import compress
    from ..compression.files import check_inputs
    from ..data.user_images import load_user_image

    target = Path(args.output).expanduser()
    if target.suffix.lower() != ".glc":
        raise GenlabError(f"output {target} must end in .glc")
    if target.is_dir():
        raise GenlabError(f"output {target} is a folder; name the .glc file to write")
    paths = [Path(p).expanduser() for p in args.images]
    names = check_inputs(paths)  # every name and header checked before any pixel is decoded
    from ..compression.ladder import run_folders

    (run,) = run_folders(args.run, args.quality, default="middle")
    model, config = load_codec(str(run), args.checkpoint)
    if args.quality is not None and args.quality != model.quality:
        raise GenlabError(f"{args.run} is quality {model.quality}, not -q {args.quality}; "
                          "pass the run folder of that quality, or its ladder")
    images = [load_user_image(p, model.data_info.shape[0], None if model.conv else model.data_info.shape[1:])
              for p in paths]  # a convolutional codec codes any size
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
    from ..compression.files import write_images

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
    from ..compression.ladder import is_ladder, run_folders

    (run,) = run_folders(args.run, parsed.quality if is_ladder(args.run) else None)
    model, _ = load_codec(str(run), args.checkpoint)
    images, names = decompress(model, data, source=str(path))
    written = write_images(outdir, names, images)  # everything is decoded before anything is written
    out(f"wrote {written} image(s) to {outdir}")
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
