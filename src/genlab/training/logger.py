"""Training records: ``stats.jsonl`` and ``metrics.jsonl`` lines, TensorBoard events, a PNG of curves."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut short by a kill: skip it
            continue
    return rows


class RunLogger:
    """Appends scalars to JSONL files in the run folder and mirrors them to TensorBoard."""

    def __init__(self, folder: Path, *, tensorboard: bool = True):
        self.folder = Path(folder)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.folder / "tb"))
            except ImportError:  # tensorboard is a dependency, but keep training if it is broken
                log.warning("tensorboard is not importable; writing JSONL only")

    def write(self, file: str, step: int, values: dict[str, float], **extra) -> None:
        row = {"step": step, **extra, **{k: _plain(v) for k, v in values.items()}}
        with open(self.folder / file, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            prefix = file.removesuffix(".jsonl")
            for k, v in values.items():
                v = _plain(v)
                if isinstance(v, float) and math.isfinite(v):
                    self._tb.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def _plain(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def plot_curves(folder: Path, out: Path | None = None) -> Path | None:
    """One panel per logged quantity: training scalars (thin) and validation metrics (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    stats, metrics = read_jsonl(folder / "stats.jsonl"), read_jsonl(folder / "metrics.jsonl")
    skip = {"step", "epoch", "time", "split"}
    keys = [k for k in _keys(stats) if k not in skip] + [f"val {k}" for k in _keys(metrics) if k not in skip]
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        src, name = (metrics, key[4:]) if key.startswith("val ") else (stats, key)
        pts = [(r["step"], r[name]) for r in src if isinstance(r.get(name), int | float)]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, "o-" if src is metrics else "-", lw=1, ms=3)
        floor = [r["floor"][name] for r in src if isinstance(r.get("floor"), dict) and name in r["floor"]]
        if floor:  # the same metric between held-out and training images: the best one can hope for
            ax.axhline(floor[-1], color="tab:green", ls="--", lw=1, label="real vs real")
            ax.legend(fontsize=7)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(out or folder / "curves.png")
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _keys(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, int | float):
                seen.setdefault(k, None)
    return list(seen)
