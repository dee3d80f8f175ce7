"""Rate–distortion curves: the learned codec against JPEG, WebP and PNG, and BD-rate.

Every point is per image averaged: bits per pixel (bits / (H * W)) and PSNR on 8-bit pixels
(the decoded image rounded to 0..255, against the original rounded the same way). JPEG is
counted two ways: the whole file, and the entropy-coded segment only (the bytes between each
SOS header and the next marker, markers excluded), as if its headers and tables were shared
like our model's weights. Our side counts the real range-coder payload of each image alone.

BD-rate (Bjøntegaard 2001, VCEG-M33) is the mean difference of log-rate over the common PSNR
range; we interpolate log-rate piecewise linearly in PSNR instead of a cubic fit, which is
stabler with few points (with one point: the rate ratio at that PSNR).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .codec import payload_bytes_per_image

JPEG_QUALITIES = tuple(range(5, 96, 10))
WEBP_QUALITIES = tuple(range(5, 96, 10))


def to_uint8(x: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8, rounded."""
    a = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def jpeg_entropy_coded_bytes(data: bytes) -> int:
    """Bytes of entropy-coded scan data in a JPEG: after each SOS header up to the next real
    marker (0xFF followed by neither 0x00 stuffing nor a restart marker), for every scan."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    pos, total = 2, 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # SOS: scan data until the next non-RST marker
            start = pos
            while pos + 1 < len(data):
                if data[pos] == 0xFF and data[pos + 1] != 0x00 and not 0xD0 <= data[pos + 1] <= 0xD7:
                    break
                pos += 1
            total += pos - start
    return total


def _encode_pillow(img: np.ndarray, fmt: str, **options) -> tuple[bytes, np.ndarray]:
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format=fmt, **options)
    data = buffer.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert(Image.fromarray(img).mode))


def baseline_curves(images: Sequence[Tensor]) -> dict[str, list[dict]]:
    """{"jpeg", "jpeg_ecs", "webp", "png"}: lists of {"quality", "bpp", "psnr"} points."""
    originals = [to_uint8(x) for x in images]
    pixels = [a.shape[0] * a.shape[1] for a in originals]
    curves: dict[str, list[dict]] = {"jpeg": [], "jpeg_ecs": [], "webp": [], "png": []}
    for q in JPEG_QUALITIES:
        whole, ecs, quality = [], [], []
        for a, n in zip(originals, pixels, strict=True):
            data, decoded = _encode_pillow(a, "JPEG", quality=q, optimize=True)
            whole.append(8 * len(data) / n)
            ecs.append(8 * jpeg_entropy_coded_bytes(data) / n)
            quality.append(psnr8(a, decoded))
        p = float(np.mean(quality))
        curves["jpeg"].append({"quality": q, "bpp": float(np.mean(whole)), "psnr": p})
        curves["jpeg_ecs"].append({"quality": q, "bpp": float(np.mean(ecs)), "psnr": p})
    for q in WEBP_QUALITIES:
        rates, quality = [], []
        for a, n in zip(originals, pixels, strict=True):
            data, decoded = _encode_pillow(a, "WEBP", quality=q, method=6)
            rates.append(8 * len(data) / n)
            quality.append(psnr8(a, decoded))
        curves["webp"].append({"quality": q, "bpp": float(np.mean(rates)), "psnr": float(np.mean(quality))})
    rates = [8 * len(_encode_pillow(a, "PNG", optimize=True)[0]) / n for a, n in zip(originals, pixels, strict=True)]
    curves["png"].append({"quality": None, "bpp": float(np.mean(rates)), "psnr": None})  # lossless
    return curves


@torch.no_grad()
def codec_point(model, images: Sequence[Tensor], *, batch: int = 256) -> dict:
    """One rate–distortion point of a trained codec: real payload bits per pixel, 8-bit PSNR."""
    sizes = payload_bytes_per_image(model, images)
    rates, quality = [], []
    for i in range(0, len(images), batch):
        chunk = torch.stack(list(images[i:i + batch])).to(model.device)
        for x, r in zip(chunk, model.reconstruct(chunk), strict=True):
            quality.append(psnr8(to_uint8(x), to_uint8(r)))
    for x, s in zip(images, sizes, strict=True):
        rates.append(8 * s / (x.shape[1] * x.shape[2]))
    return {"quality": int(model.quality), "lmbda": float(model.lmbda),
            "bpp": float(np.mean(rates)), "psnr": float(np.mean(quality))}


def _curve(points: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR, log bpp) of the finite points, sorted by PSNR."""
    pts = sorted((p["psnr"], math.log(p["bpp"])) for p in points
                 if p.get("psnr") is not None and math.isfinite(p["psnr"]) and p["bpp"] > 0)
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def common_psnr_range(test: Sequence[dict], anchor: Sequence[dict]) -> tuple[float, float] | None:
    """The PSNR interval both curves cover (where BD-rate compares them), or None."""
    tp, _ = _curve(test)
    ap, _ = _curve(anchor)
    if len(tp) == 0 or len(ap) == 0 or max(tp.min(), ap.min()) > min(tp.max(), ap.max()):
        return None
    return float(max(tp.min(), ap.min())), float(min(tp.max(), ap.max()))


def bd_rate(test: Sequence[dict], anchor: Sequence[dict]) -> float | None:
    """Average rate difference of ``test`` against ``anchor`` at equal PSNR, in percent
    (negative: fewer bits), over ``common_psnr_range``. None when the PSNR ranges do not overlap."""
    tp, tr = _curve(test)
    ap, ar = _curve(anchor)
    common = common_psnr_range(test, anchor)
    if common is None:
        return None
    lo, hi = common
    if lo == hi:  # a single point: compare at that PSNR
        diff = float(np.interp(lo, tp, tr) - np.interp(lo, ap, ar))
    else:
        grid = np.linspace(lo, hi, 200)
        diff = float(np.mean(np.interp(grid, tp, tr) - np.interp(grid, ap, ar)))
    return 100 * (math.exp(diff) - 1)


def plot_rd(curves: dict[str, list[dict]], path, *, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    styles = {"genlab": "o-", "jpeg": "s--", "jpeg_ecs": "s-", "webp": "^-"}
    labels = {"genlab": "genlab (payload)", "jpeg": "JPEG (whole file)", "jpeg_ecs": "JPEG (entropy-coded segment)",
              "webp": "WebP (whole file)"}
    for name, style in styles.items():
        pts = sorted(curves.get(name, []), key=lambda p: p["bpp"])
        if pts:
            ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], style, ms=4, label=labels[name])
    for p in curves.get("png", []):
        ax.axvline(p["bpp"], color="gray", ls=":", label=f"PNG lossless ({p['bpp']:.2f} bpp)")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB, 8-bit)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def jpeg_at_matched_rate(img: np.ndarray, budget_bits: float) -> tuple[int, float, np.ndarray]:
    """The highest JPEG quality (1..95) whose entropy-coded segment fits ``budget_bits`` (quality 1
    when none does): (quality, its ECS bits, the decoded image)."""
    best = None
    for q in range(1, 96):
        data, decoded = _encode_pillow(img, "JPEG", quality=q, optimize=True)
        bits = 8 * jpeg_entropy_coded_bytes(data)
        if best is None or bits <= budget_bits:
            best = (q, float(bits), decoded)
        if bits > budget_bits:
            break
    return best


@torch.no_grad()
def plot_matched(models, images: Sequence[Tensor], path, *, n: int = 8) -> list[dict]:
    """Rows per codec quality: genlab's decoded images, then JPEG at (at most) the same bits per
    image, each titled with its bpp and PSNR; the originals on top; n images spread evenly over
    ``images``. Returns the per-image figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .codec import payload_bytes_per_image

    picks = np.linspace(0, len(images) - 1, min(n, len(images))).round().astype(int)  # spread over the set
    images = [images[i] for i in picks]
    models = sorted(models, key=lambda m: m.quality)
    originals = [to_uint8(x) for x in images]
    rows = [("original", [(a, "") for a in originals])]
    records = []
    for model in models:
        sizes = payload_bytes_per_image(model, images)
        decoded = [to_uint8(r) for r in model.reconstruct(torch.stack(images).to(model.device)).cpu()]
        ours, theirs = [], []
        for a, d, s in zip(originals, decoded, sizes, strict=True):
            px = a.shape[0] * a.shape[1]
            q, bits, j = jpeg_at_matched_rate(a, 8 * s)
            rec = {"quality": int(model.quality), "genlab_bpp": 8 * s / px, "genlab_psnr": psnr8(a, d),
                   "jpeg_quality": q, "jpeg_ecs_bpp": bits / px, "jpeg_psnr": psnr8(a, j)}
            records.append(rec)
            ours.append((d, f"{rec['genlab_bpp']:.2f} bpp\n{rec['genlab_psnr']:.1f} dB"))
            theirs.append((j, f"{rec['jpeg_ecs_bpp']:.2f} bpp\n{rec['jpeg_psnr']:.1f} dB"))
        rows += [(f"genlab q{model.quality}", ours), ("JPEG, same bits", theirs)]
    fig, axes = plt.subplots(len(rows), len(images), figsize=(1.25 * len(images), 1.45 * len(rows)), squeeze=False)
    for r, (label, cells) in enumerate(rows):
        for c, (img, title) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=6)
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return records
