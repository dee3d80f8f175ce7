"""``rd_report``: the rate–distortion comparison of ``genlab rd`` as one library call.

Codec runs (single runs, ladders, variable-rate models: every quality of each) against JPEG, WebP, AVIF
and PNG on the same images, BD-rate against each, the published Ballé curves where the images are Kodak
photographs, a picture of the curves, a picture at matched bits, and a JSON of every point.

Images: a ``folder:`` data set given to a convolutional codec is read whole, every image at its own size
(no crop, no resize: what a user compresses); other data sets as the run saw them (``runs.data_for_run``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from ..errors import GenlabError
from . import rd
from .ladder import load_codec, run_folders
from .published import PUBLISHED_KODAK

LEARNED = "genlab"  # the curve key of the codec under test (the others are the formats it is compared with)
# BD-rate of the learned codec against each anchor curve: (learned curve, anchor curve)
ANCHORS = {"vs_jpeg_ecs": ("genlab", "jpeg_ecs"), "vs_jpeg_file": ("genlab_file", "jpeg"),
           "vs_webp": ("genlab_file", "webp"), "vs_avif": ("genlab_file", "avif")}
PHOTO_SIDE = 256  # images at least this large on both sides get the photo treatment (published curves, crops)


@dataclass
class RDReport:
    """What ``rd_report`` measured: curves {name: [points]}, BD-rates (percent, None: no common range) and
    their PSNR ranges, the published curves compared with, and the files written."""

    data: str
    split: str
    images: int
    model: str
    curves: dict[str, list[dict]]
    bd_rate_percent: dict[str, float | None]
    bd_range_db: dict[str, tuple[float, float] | None]
    bd_psnr_db: dict[str, float | None] = field(default_factory=dict)
    published: dict[str, dict] = field(default_factory=dict)
    matched: list[dict] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    def table(self) -> list[str]:
        """The table ``genlab rd`` prints: a row per point, then the BD-rates."""
        rows = [f"{'method':<16}{'quality':>8}{'bpp':>9}{'PSNR dB':>9}{'MS-SSIM':>9}"]
        for key, points in self.curves.items():
            name = f"{LEARNED} {self.model}" if key == LEARNED else key
            for p in points:
                psnr = "lossless" if p["psnr"] is None else f"{p['psnr']:.2f}"
                ms = "-" if p.get("ms_ssim") is None else f"{p['ms_ssim']:.4f}"
                q = "-" if p["quality"] is None else p["quality"]
                rows.append(f"{name:<16}{q:>8}{p['bpp']:>9.3f}{psnr:>9}{ms:>9}")
        for k, v in self.bd_rate_percent.items():
            span, delta = self.bd_range_db.get(k), self.bd_psnr_db.get(k)
            rows.append(f"BD-rate {k}: " + ("no common PSNR range" if v is None else
                                            f"{v:+.1f}%  (PSNR {span[0]:.2f}-{span[1]:.2f} dB)")
                        + ("" if delta is None else f"; BD-PSNR {delta:+.2f} dB"))
        return rows

    def to_json(self) -> dict:
        return {"data": self.data, "split": self.split, "images": self.images, "model": self.model,
                "curves": self.curves, "bd_rate_percent": self.bd_rate_percent, "bd_range_db": self.bd_range_db,
                "bd_psnr_db": self.bd_psnr_db,
                "published": self.published, "matched": self.matched}


def rd_images(config, spec: str | None, split: str | None, n: int | None, conv: bool) -> tuple[str, str, list[Tensor]]:
    """(data name, split, images (C, H, W)) the comparison runs on (see the module docstring)."""
    from ..data.budget import SizeBudget
    from ..data.user import folder_images
    from ..runs import data_for_run

    name = spec or config.data.spec
    kind, _, path = name.partition(":")
    if kind == "folder" and conv:
        if split not in (None, "all"):
            raise GenlabError(f"--split {split}: a folder is compared whole, at full size (no splits)")
        images = folder_images(path, config.data_info.shape[0], SizeBudget.of(config.data))
        return name, "all", images[:n]
    data = data_for_run(config, spec)
    split = split or ("test" if "test" in data.splits else "all")
    if split not in (*data.splits, "all"):
        raise GenlabError(f"--split {split}: {name} has splits {', '.join(data.splits)} (or all)")
    x, _ = data.tensors(split, limit=n)
    return name, split, list(x)


def rd_report(runs: Sequence[str | Path], *, data: str | None = None, split: str | None = None,
              n: int | None = None, output: str | Path | None = None, json_path: str | Path | None = None,
              checkpoint: str = "best", baselines: dict[str, list[dict]] | None = None) -> RDReport:
    """Rate–distortion of codec runs on ``data`` (default: the first run's own), every quality of each;
    writes the curves to ``output`` (PNG), the matched-bits picture beside it (``<stem>_matched.png``) and
    every point to ``json_path``. ``baselines``: the JPEG/WebP/AVIF/PNG curves of these images when already
    measured (``baseline_curves``), to skip measuring them again."""
    if output is not None and Path(output).suffix.lower() != ".png":
        raise GenlabError(f"output {output} must end in .png")
    if json_path is not None and Path(json_path).suffix.lower() != ".json":
        raise GenlabError(f"--json {json_path} must end in .json")
    if not runs:
        raise GenlabError("give at least one codec run")
    models = [load_codec(str(r), checkpoint) for path in runs for r in run_folders(path)]
    config = models[0][1]
    name, split, images = rd_images(config, data, split, n, models[0][0].conv)
    if not images:
        raise GenlabError(f"{name} ({split}) has no images")
    points = sorted((p for m, _ in models for p in rd.codec_points(m, images)), key=lambda p: p["bpp"])
    curves = {LEARNED: points, "genlab_file": [{**p, "bpp": p["file_bpp"]} for p in points],
              **(baselines or rd.baseline_curves(images))}
    photos = min(min(x.shape[-2:]) for x in images) >= PHOTO_SIDE and images[0].shape[0] == 3
    published = {k: v for k, v in PUBLISHED_KODAK.items()} if photos and "kodak" in name.lower() else {}
    bd = {k: rd.bd_rate(curves[a], curves[b]) for k, (a, b) in ANCHORS.items()}
    span = {k: rd.common_psnr_range(curves[a], curves[b]) for k, (a, b) in ANCHORS.items()}
    delta = {k: rd.bd_psnr(curves[a], curves[b]) for k, (a, b) in ANCHORS.items()}
    for key, ref in published.items():
        ref_curve = [{"bpp": b, "psnr": q} for b, q in ref["points"]]
        bd[f"vs_{key}"] = rd.bd_rate(curves["genlab_file"], ref_curve)
        span[f"vs_{key}"] = rd.common_psnr_range(curves["genlab_file"], ref_curve)
        delta[f"vs_{key}"] = rd.bd_psnr(curves["genlab_file"], ref_curve)
    report = RDReport(data=name, split=split, images=len(images), model=config.model, curves=curves,
                      bd_rate_percent=bd, bd_range_db=span, bd_psnr_db=delta, published=published)
    if output is not None:
        target = Path(output).expanduser()
        rd.plot_rd(curves, target, published=published,
                title=f"{name} ({split}), {len(images)} images at full size, means over images")
        matched = target.with_name(f"{target.stem}_matched.png")
        model = models[0][0]
        if photos or len({tuple(x.shape) for x in images}) > 1:  # photographs: a window of one, at full size
            qualities = sorted(model.qualities)
            shown = sorted({qualities[0], qualities[len(qualities) // 2]})
            report.matched = rd.plot_matched_crops(model, images[0], matched, qualities=shown, name=f"{name} image 0",
                                                crop=min(192, *images[0].shape[-2:]))
        else:
            report.matched = rd.plot_matched([m for m, _ in models], images, matched)
        report.written += [target, matched]
    if json_path is not None:
        Path(json_path).expanduser().write_text(json.dumps(report.to_json(), indent=2))
        report.written.append(Path(json_path))
    return report
