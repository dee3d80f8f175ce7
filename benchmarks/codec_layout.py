"""How fast a photo codec learns, by variant: the same steps, data and optimiser, scored on Kodak images.

    python benchmarks/codec_layout.py --photos ../shared/data/photos --kodak ../shared/data/kodak \\
        --variants gdn_conv3 latent [--steps 2000] [--lr 1e-3] [--json results/codec_layout.json]

Each variant is one-rate ``codec`` (lambda 0.013, CompressAI's quality 4) with the photo ladder's sizes (4
stride-2 stages of 64 channels, M = 96, a 64-channel hyperprior), trained on batches of 8 random 128x128
crops (with flips) of the photos, drawn from one seeded generator so every variant sees the same crops, with
Adam and gradient clipping at 1 like ``compression_photos.py``. Every ``--eval-every`` steps: bpp (ideal code
length of the rounded latents under the model's densities) and PSNR of the decoded rounded latents on four
Kodak images at full size (kodim01, 05, 13, 23), and the rate + lambda * distortion of that point. One torch
thread; budgets are in steps, so the machine's load changes the time, not the result.

Variants: ``gdn_conv3`` / ``latent`` are ``model.last_stage``; ``latent-ste`` is ``latent`` with
``model.decoder_input=round``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.config import DataInfo
from genlab.models.codec import Codec, CodecConfig

KODAK = ("kodim01.png", "kodim05.png", "kodim13.png", "kodim23.png")
VARIANTS = {"gdn_conv3": {"last_stage": "gdn_conv3"}, "latent": {"last_stage": "latent"},
            "latent-ste": {"last_stage": "latent", "decoder_input": "round"}}


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))  # (H, W, 3) uint8, writable


def train_variant(name: str, photos: list[np.ndarray], kodak: list[torch.Tensor], args) -> list[dict]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = CodecConfig(latent_dim=96, channels=(64, 64, 64, 64), hyper_channels=64, hyper_latent=64,
                      lmbda=args.lmbda, **VARIANTS[name])
    model = Codec(cfg, DataInfo(shape=(3, 128, 128), kind="image"))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def batch() -> torch.Tensor:  # (8, 3, 128, 128) in [0, 1]
        crops = []
        for _ in range(8):
            im = photos[rng.integers(len(photos))]
            i, j = rng.integers(im.shape[0] - 127), rng.integers(im.shape[1] - 127)
            c = im[i:i + 128, j:j + 128]
            crops.append(np.ascontiguousarray(c[:, ::-1] if rng.random() < 0.5 else c))
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255

    rows, start = [], time.process_time()
    for step in range(1, args.steps + 1):
        loss = model.loss(None, {"x": batch()})["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.eval_every == 0:
            model.eval()
            with torch.no_grad():
                scores = [model.loss(None, {"x": x}) for x in kodak]
            model.train()
            bpp = float(np.mean([float(s["bpp"]) for s in scores]))
            mse = float(np.mean([float(s["mse"]) for s in scores]))
            psnr = float(np.mean([10 * math.log10(1 / float(s["mse"])) for s in scores]))
            rows.append({"variant": name, "step": step, "cpu_s": round(time.process_time() - start, 1),
                         "bpp": bpp, "psnr": psnr, "rd_loss": bpp + args.lmbda * 255 ** 2 * mse})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", required=True)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--variants", nargs="+", default=["gdn_conv3", "latent"], choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lmbda", type=float, default=0.013)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    photos = [_rgb(p) for p in sorted(Path(args.photos).iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    kodak = [torch.from_numpy(_rgb(Path(args.kodak) / k)).permute(2, 0, 1)[None].float() / 255 for k in KODAK]
    rows = [r for v in args.variants for r in train_variant(v, photos, kodak, args)]
    print(f"\n{'variant':<12}{'step':>6}{'bpp':>8}{'PSNR dB':>9}{'rd_loss':>9}   (4 Kodak images, lambda {args.lmbda})")
    for r in rows:
        print(f"{r['variant']:<12}{r['step']:>6}{r['bpp']:>8.3f}{r['psnr']:>9.2f}{r['rd_loss']:>9.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
