"""Learned codec vs JPEG / WebP / PNG: rate–distortion, BD-rate and coding speed.

    python benchmarks/compression.py RUN_OR_LADDER [...] [--data mnist5k] [-n 500] [--json out.json]
                                     [--picture matched.png]

Rate–distortion points come from ``genlab.compression.rd`` (per image averaged bpp and 8-bit
PSNR); speed is images per second for encode (g_a + range coding) and decode (range decoding +
g_s) of the whole set in one .glc file, beside Pillow's JPEG at quality 75 on the same images.
Speeds on a shared machine are noisy: medians of 3 repeats, with the min and max; one torch thread. ``--picture``
draws the same images at matched bits per image, genlab vs JPEG (entropy-coded segment).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

import numpy as np
import torch
from PIL import Image

from genlab.compression import compress, decompress
from genlab.compression.ladder import load_codec, run_folders
from genlab.compression.rd import baseline_curves, bd_rate, codec_point, common_psnr_range, plot_matched, to_uint8
from genlab.runs import data_for_run


def _timed(fn, repeats: int = 3) -> tuple[float, float, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), min(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", default=None)
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--json", default=None)
    ap.add_argument("--picture", default=None, help="PNG: the same images at matched bits, JPEG vs genlab")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread, as Pillow codes; more threads only add contention on small images
    models = [load_codec(str(r)) for path in args.runs for r in run_folders(path)]
    data = data_for_run(models[0][1], args.data)
    x, _ = data.tensors("test" if "test" in data.splits else "all", limit=args.n)
    images = list(x)
    genlab = sorted((codec_point(m, images) for m, _ in models), key=lambda p: p["bpp"])
    curves = {"genlab": genlab, **baseline_curves(images)}
    speed = {}
    for m, _ in models:
        blob = compress(m, images)
        enc = _timed(lambda m=m: compress(m, images))
        dec = _timed(lambda m=m, blob=blob: decompress(m, blob))
        speed[f"genlab lmbda={m.config.lmbda}"] = {"encode_img_s": len(images) / enc[0],
                                                   "decode_img_s": len(images) / dec[0]}
    arrays = [to_uint8(a) for a in images]

    def jpeg_encode():
        return [_jpeg(a) for a in arrays]

    blobs = jpeg_encode()
    enc = _timed(jpeg_encode)
    dec = _timed(lambda: [np.asarray(Image.open(io.BytesIO(b))) for b in blobs])
    speed["jpeg q75"] = {"encode_img_s": len(images) / enc[0], "decode_img_s": len(images) / dec[0]}
    anchors = {"vs_jpeg_ecs": "jpeg_ecs", "vs_jpeg_file": "jpeg", "vs_webp": "webp"}
    bd = {k: bd_rate(genlab, curves[a]) for k, a in anchors.items()}
    ranges = {k: common_psnr_range(genlab, curves[a]) for k, a in anchors.items()}
    ladder = sorted((m for m, _ in models), key=lambda m: m.config.quality)
    shown = [ladder[0], ladder[len(ladder) // 2], ladder[-1]] if len(ladder) > 3 else ladder  # lowest, middle, highest
    matched = plot_matched(shown, images, args.picture) if args.picture else None
    print(f"{len(images)} images of {data.name}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'codec':<12}{'q':>6}{'bpp':>8}{'PSNR':>8}")
    for key, pts in curves.items():
        for p in pts:
            psnr = "inf" if p["psnr"] is None else f"{p['psnr']:.2f}"
            print(f"{key:<12}{str(p['quality']):>6}{p['bpp']:>8.3f}{psnr:>8}")
    for k, v in bd.items():
        span = "" if ranges[k] is None else f"  (common PSNR range {ranges[k][0]:.2f}-{ranges[k][1]:.2f} dB)"
        print(f"BD-rate {k}: {'n/a' if v is None else f'{v:+.1f}%'}{span}")
    for k, v in speed.items():
        print(f"{k:<24} encode {v['encode_img_s']:8.0f} img/s   decode {v['decode_img_s']:8.0f} img/s")
    result = {"data": data.name, "images": len(images), "curves": curves, "bd_rate_percent": bd,
              "bd_psnr_range_db": ranges, "speed": speed, "matched": matched}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


def _jpeg(a: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="JPEG", quality=75, optimize=True)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
