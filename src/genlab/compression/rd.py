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

JPEG_QUALITIES = (1, 3, *range(5, 96, 10))  # 1 and 3 reach below 24 dB on Kodak
WEBP_QUALITIES = (0, *range(5, 96, 10))
AVIF_QUALITIES = (0, *range(10, 91, 10))
MSSSIM_MIN_SIDE = 161  # 5 scales of an 11x11 window: each side > (11 - 1) * 2**4


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


def ms_ssim8(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM (Wang et al. 2003; ``pytorch_msssim``, 5 scales, 11x11 Gaussian window) of two uint8 images
    (H, W[, 3]); None when a side is under ``MSSSIM_MIN_SIDE`` pixels (too small for 5 scales)."""
    if min(a.shape[:2]) < MSSSIM_MIN_SIDE:
        return None
    from pytorch_msssim import ms_ssim

    def t(v: np.ndarray) -> Tensor:
        v = torch.from_numpy(v.astype(np.float32))
        return (v[None, None] if v.ndim == 2 else v.permute(2, 0, 1)[None])  # (1, C, H, W)

    return float(ms_ssim(t(a), t(b), data_range=255))


def _point(quality, rates: list[float], originals: list[np.ndarray], decoded: list[np.ndarray]) -> dict:
    """A curve point: mean bpp, mean PSNR, mean MS-SSIM (and in dB, -10 log10(1 - MS-SSIM)) of the images."""
    psnr = float(np.mean([psnr8(a, d) for a, d in zip(originals, decoded, strict=True)]))
    ssim = [ms_ssim8(a, d) for a, d in zip(originals, decoded, strict=True)]
    ms = None if any(v is None for v in ssim) else float(np.mean(ssim))
    return {"quality": quality, "bpp": float(np.mean(rates)), "psnr": psnr, "ms_ssim": ms,
            "ms_ssim_db": None if ms is None else -10 * math.log10(max(1 - ms, 1e-12))}


def baseline_curves(images: Sequence[Tensor]) -> dict[str, list[dict]]:
    """{"jpeg", "jpeg_ecs", "webp", "avif", "png"}: lists of {"quality", "bpp", "psnr", "ms_ssim", ...} points.

    ``jpeg``: whole files with Pillow's defaults (4:2:0, standard Huffman tables: the convention of
    CompressAI's published ``jpeg.json``); ``jpeg_ecs``: the entropy-coded segment alone of files with
    optimised Huffman tables (as if headers and tables were shared, like a learned codec's weights);
    ``webp``: whole files, method 6; ``avif``: whole files, Pillow's defaults; ``png``: lossless."""
    originals = [to_uint8(x) for x in images]
    pixels = [a.shape[0] * a.shape[1] for a in originals]
    curves: dict[str, list[dict]] = {"jpeg": [], "jpeg_ecs": [], "webp": [], "avif": [], "png": []}
    for q in JPEG_QUALITIES:
        files = [_encode_pillow(a, "JPEG", quality=q) for a in originals]
        ecs = [8 * jpeg_entropy_coded_bytes(_encode_pillow(a, "JPEG", quality=q, optimize=True)[0]) / n
               for a, n in zip(originals, pixels, strict=True)]
        curves["jpeg"].append(_point(q, [8 * len(d) / n for (d, _), n in zip(files, pixels, strict=True)],
                                     originals, [r for _, r in files]))
        optimised = [_encode_pillow(a, "JPEG", quality=q, optimize=True)[1] for a in originals]
        curves["jpeg_ecs"].append(_point(q, ecs, originals, optimised))
    for fmt, qualities, options in (("webp", WEBP_QUALITIES, {"method": 6}), ("avif", AVIF_QUALITIES, {})):
        for q in qualities:
            files = [_encode_pillow(a, fmt.upper(), quality=q, **options) for a in originals]
            curves[fmt].append(_point(q, [8 * len(d) / n for (d, _), n in zip(files, pixels, strict=True)],
                                      originals, [r for _, r in files]))
    rates = [8 * len(_encode_pillow(a, "PNG", optimize=True)[0]) / n for a, n in zip(originals, pixels, strict=True)]
    curves["png"].append({"quality": None, "bpp": float(np.mean(rates)), "psnr": None, "ms_ssim": None,
                          "ms_ssim_db": None})  # lossless
    return curves


@torch.no_grad()
def codec_points(model, images: Sequence[Tensor], qualities: Sequence[int] | None = None) -> list[dict]:
    """One rate–distortion point per quality the codec codes at (``model.qualities``): each image compressed
    alone into a .glc file and decompressed from it. "bpp": its range-coder payload (flush included);
    "file_bpp": the whole .glc file; PSNR and MS-SSIM of the decoded file against the original."""
    from . import format as glc
    from .codec import compress, decompress

    originals = [to_uint8(x) for x in images]
    pixels = [a.shape[0] * a.shape[1] for a in originals]
    before, points = model.quality, []
    for q in qualities or model.qualities:
        model.set_quality(q)
        files = [compress(model, [x]) for x in images]
        decoded = [to_uint8(decompress(model, data)[0][0]) for data in files]
        point = _point(int(q), [8 * len(glc.unpack(d).payload) / n for d, n in zip(files, pixels, strict=True)],
                       originals, decoded)
        point["file_bpp"] = float(np.mean([8 * len(d) / n for d, n in zip(files, pixels, strict=True)]))
        points.append({"lmbda": float(model.lmbda), **point})
    model.set_quality(before)
    return points


def codec_point(model, images: Sequence[Tensor]) -> dict:
    """The rate–distortion point of a codec at the quality it codes at now (see ``codec_points``)."""
    return codec_points(model, images, (model.quality,))[0]


def _curve(points: Sequence[dict], metric: str = "psnr") -> tuple[np.ndarray, np.ndarray]:
    """(quality metric, log bpp) of the finite points, sorted by the metric."""
    pts = sorted((p[metric], math.log(p["bpp"])) for p in points
                 if p.get(metric) is not None and math.isfinite(p[metric]) and p["bpp"] > 0)
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def common_psnr_range(test: Sequence[dict], anchor: Sequence[dict], metric: str = "psnr") -> tuple[float, float] | None:
    """The interval of ``metric`` (dB) both curves cover (where BD-rate compares them), or None."""
    tp, _ = _curve(test, metric)
    ap, _ = _curve(anchor, metric)
    if len(tp) == 0 or len(ap) == 0 or max(tp.min(), ap.min()) > min(tp.max(), ap.max()):
        return None
    return float(max(tp.min(), ap.min())), float(min(tp.max(), ap.max()))


def bd_rate(test: Sequence[dict], anchor: Sequence[dict], metric: str = "psnr") -> float | None:
    """Average rate difference of ``test`` against ``anchor`` at equal PSNR (or ``metric``, e.g.
    "ms_ssim_db"), in percent (negative: fewer bits), over ``common_psnr_range``. None when the ranges
    do not overlap."""
    tp, tr = _curve(test, metric)
    ap, ar = _curve(anchor, metric)
    common = common_psnr_range(test, anchor, metric)
    if common is None:
        return None
    lo, hi = common
    if lo == hi:  # a single point: compare at that PSNR
        diff = float(np.interp(lo, tp, tr) - np.interp(lo, ap, ar))
    else:
        grid = np.linspace(lo, hi, 200)
        diff = float(np.mean(np.interp(grid, tp, tr) - np.interp(grid, ap, ar)))
    return 100 * (math.exp(diff) - 1)


def bd_psnr(test: Sequence[dict], anchor: Sequence[dict]) -> float | None:
    """Bjøntegaard delta PSNR: the mean PSNR difference (dB; positive: ``test`` is better) of ``test`` against
    ``anchor`` over the log-rate range both cover, PSNR interpolated piecewise linearly in log-rate. None when
    the rate ranges do not overlap. It is defined where BD-rate is not: curves that share rates but no PSNR."""
    def by_rate(points):
        pts = sorted((math.log(p["bpp"]), p["psnr"]) for p in points
                     if p.get("psnr") is not None and math.isfinite(p["psnr"]) and p["bpp"] > 0)
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])

    tr, tp = by_rate(test)
    ar, ap = by_rate(anchor)
    if len(tr) == 0 or len(ar) == 0:
        return None
    lo, hi = max(tr.min(), ar.min()), min(tr.max(), ar.max())
    if lo > hi:
        return None
    grid = np.linspace(lo, hi, 200) if hi > lo else np.array([lo])
    return float(np.mean(np.interp(grid, tr, tp) - np.interp(grid, ar, ap)))


def rate_at(points: Sequence[dict], target: float, metric: str = "psnr", rate: str = "bpp") -> float | None:
    """The lowest ``rate`` at which the curve reaches ``metric`` = ``target`` (time to quality for a codec:
    bpp at a fixed PSNR). Points are taken by rising rate; from the best point so far to the first that
    reaches the target, the rate is interpolated linearly in log-rate. None when no point reaches the target,
    or the lowest-rate point already exceeds it (the answer lies below the measured rates)."""
    pts = sorted((p[rate], p[metric]) for p in points
                 if p.get(metric) is not None and math.isfinite(p[metric]) and p[rate] > 0)
    best = None  # (rate, metric) of the highest metric so far
    for r, q in pts:
        if q >= target:
            if best is None:
                return r if q == target else None
            (r0, q0) = best
            return math.exp(math.log(r0) + (target - q0) / (q - q0) * (math.log(r) - math.log(r0)))
        if best is None or q > best[1]:
            best = (r, q)
    return None


CURVE_STYLES = {  # curve key -> (matplotlib style, legend label)
    "genlab": ("o-", "genlab (range-coder payload)"), "genlab_file": ("o-", "genlab (whole .glc file)"),
    "jpeg": ("s--", "JPEG (whole file)"), "jpeg_ecs": ("s-", "JPEG (entropy-coded segment)"),
    "webp": ("^-", "WebP (whole file, method 6)"), "avif": ("v-", "AVIF (whole file)"),
}


def plot_rd(curves: dict[str, list[dict]], path, *, title: str = "", published: dict | None = None) -> list[str]:
    """PSNR (and MS-SSIM in dB, where measured) against bpp of each curve; ``published`` ({name: {"label",
    "points"}}, e.g. ``published.PUBLISHED_KODAK``) as grey dashed reference lines labelled as such.
    Returns the legend's labels."""
    from matplotlib.figure import Figure  # not pyplot: the caller's backend is left alone

    panels = [("psnr", "PSNR (dB, 8-bit RGB)")]
    if any(p.get("ms_ssim_db") is not None for pts in curves.values() for p in pts):
        panels.append(("ms_ssim_db", "MS-SSIM (dB: -10 log10(1 - MS-SSIM))"))
    fig = Figure(figsize=(6 * len(panels), 4.4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (metric, ylabel) in zip(axes[0], panels, strict=True):
        for name, (style, label) in CURVE_STYLES.items():
            pts = sorted((p for p in curves.get(name, []) if p.get(metric) is not None), key=lambda p: p["bpp"])
            if pts:
                ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], style, ms=4, label=label)
        if metric == "psnr":
            for k, ref in (published or {}).items():
                b, q = zip(*ref["points"], strict=True)
                ax.plot(b, q, "--", color="0.45" if "2018" in k else "0.7", lw=1.2, label=ref["label"])
        for p in curves.get("png", []):
            ax.axvline(p["bpp"], color="gray", ls=":", label=f"PNG lossless ({p['bpp']:.2f} bpp)")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    bpps = [p["bpp"] for k in CURVE_STYLES for p in curves.get(k, [])]
    if bpps and max(bpps) > 3 * np.median(bpps):  # keep the interesting range readable
        for ax in axes[0]:
            ax.set_xlim(0, 2.5 * float(np.median(bpps)))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    labels = [t.get_text() for ax in axes[0] for t in ax.get_legend().get_texts()]
    return labels


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
    from matplotlib.figure import Figure  # not pyplot: the caller's backend is left alone


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
    fig = Figure(figsize=(1.25 * len(images), 1.45 * len(rows)))
    axes = fig.subplots(len(rows), len(images), squeeze=False)
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
    return records


def _at_matched_size(img: np.ndarray, fmt: str, budget_bytes: int, qualities: Sequence[int],
                     **options) -> tuple[int, int, np.ndarray]:
    """The highest ``fmt`` quality whose whole file is at most ``budget_bytes`` (the lowest when none is):
    (quality, file bytes, decoded image)."""
    best = None
    for q in qualities:
        data, decoded = _encode_pillow(img, fmt, quality=q, **options)
        if best is None or len(data) <= budget_bytes:
            best = (q, len(data), decoded)
        if len(data) > budget_bytes:
            break
    return best


@torch.no_grad()
def plot_matched_crops(model, image: Tensor, path, *, qualities: Sequence[int], crop: int = 192,
                       name: str = "") -> list[dict]:
    """Side by side at matched bits: a ``crop`` x ``crop`` window of ``image`` (the original), then genlab's,
    JPEG's and WebP's decoding of the whole image, JPEG and WebP at the largest quality whose whole file is
    no larger than genlab's .glc file; one row per codec quality. Returns each row's figures."""
    from matplotlib.figure import Figure  # not pyplot: the caller's backend is left alone

    from .codec import compress, decompress

    a = to_uint8(image)
    h, w = a.shape[:2]
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    window = (slice(top, top + crop), slice(left, left + crop))
    before, rows, records = model.quality, [], []
    for q in qualities:
        model.set_quality(q)
        data = compress(model, [image])
        ours = to_uint8(decompress(model, data)[0][0])
        jq, jbytes, jpeg = _at_matched_size(a, "JPEG", len(data), range(1, 96))
        wq, wbytes, webp = _at_matched_size(a, "WEBP", len(data), range(0, 101), method=6)
        bpp = lambda n: 8 * n / (h * w)  # noqa: E731
        rec = {"quality": int(q), "genlab_bpp": bpp(len(data)), "genlab_psnr": psnr8(a, ours),
               "jpeg_quality": jq, "jpeg_bpp": bpp(jbytes), "jpeg_psnr": psnr8(a, jpeg),
               "webp_quality": wq, "webp_bpp": bpp(wbytes), "webp_psnr": psnr8(a, webp)}
        records.append(rec)
        rows.append([(a, "original"), (ours, f"genlab q{q}: {rec['genlab_bpp']:.3f} bpp, {rec['genlab_psnr']:.2f} dB"),
                     (jpeg, f"JPEG q{jq}: {rec['jpeg_bpp']:.3f} bpp, {rec['jpeg_psnr']:.2f} dB"),
                     (webp, f"WebP q{wq}: {rec['webp_bpp']:.3f} bpp, {rec['webp_psnr']:.2f} dB")])
    model.set_quality(before)
    fig = Figure(figsize=(11, 3.0 * len(rows)))
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for r, cells in enumerate(rows):
        for c, (img, title) in enumerate(cells):
            axes[r][c].imshow(img[window], interpolation="nearest")
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            axes[r][c].set_title(title, fontsize=8)
    fig.suptitle(f"{name}: {crop}x{crop} window at (x={left}, y={top}); bpp and PSNR of the whole {w}x{h} image, "
                 "each file no larger than genlab's", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=56)
    return records
