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


#: the fields of a stats / metrics line that say where and when it was written, not what was measured
RECORD_FIELDS = frozenset({"step", "epoch", "time", "cpu_time", "threads", "split"})


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


#: training scalars drawn again beside each validation metric: a GAN critic's gap E[D(real)] - E[D(fake)]
#: (with the Wasserstein loss, its estimate of W1) against sample quality (Arjovsky et al. 2017, Fig. 3)
BESIDE_QUALITY = ("critic_gap",)


def paired_panels(stats_keys: list[str], metric_keys: list[str]) -> list[tuple[str, str]]:
    """(training scalar, validation metric) pairs to draw on twin axes in one panel."""
    return [(s, m) for s in stats_keys if s.rsplit("/", 1)[-1] in BESIDE_QUALITY for m in metric_keys]


def plot_curves(folder: Path, out: Path | None = None) -> Path | None:
    """One panel per logged quantity: training scalars (thin) and validation metrics (dots); then a
    panel per ``paired_panels`` pair, the scalar (left axis) beside the metric (right axis)."""
    from matplotlib.figure import Figure  # not pyplot: drawing a run's curves leaves the caller's backend alone

    folder = Path(folder)
    stats, metrics = read_jsonl(folder / "stats.jsonl"), read_jsonl(folder / "metrics.jsonl")
    stat_keys = [k for k in _keys(stats) if k not in RECORD_FIELDS]
    metric_keys = [k for k in _keys(metrics) if k not in RECORD_FIELDS]
    keys = stat_keys + [f"val {k}" for k in metric_keys]
    pairs = paired_panels(stat_keys, metric_keys)
    if not keys:
        return None
    cols = min(3, len(keys) + len(pairs))
    rows = math.ceil((len(keys) + len(pairs)) / cols)
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, pair in zip(list(axes.flat)[len(keys):], pairs, strict=False):
        _paired(ax, stats, metrics, *pair)
    for ax, key in zip(axes.flat, keys, strict=False):
        src, name = (metrics, key[4:]) if key.startswith("val ") else (stats, key)
        ax.plot(*_points(src, name), "o-" if src is metrics else "-", lw=1, ms=3)
        _floor(ax, src, name)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) + len(pairs):]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(out or folder / "curves.png")
    fig.savefig(out, dpi=90)
    return out


def _points(rows: list[dict], name: str) -> tuple[tuple, tuple]:
    pts = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), int | float)]
    return tuple(zip(*pts, strict=True)) if pts else ((), ())


def _floor(ax, rows: list[dict], name: str) -> None:
    """The same metric between held-out and training images: the best one can hope for."""
    floor = [r["floor"][name] for r in rows if isinstance(r.get("floor"), dict) and name in r["floor"]]
    if floor:
        ax.axhline(floor[-1], color="tab:green", ls="--", lw=1, label="real vs real")
        ax.legend(fontsize=7)


def _paired(ax, stats: list[dict], metrics: list[dict], stat: str, metric: str) -> None:
    """``stat`` (line, left axis) and the validation ``metric`` (dots, right axis) over steps."""
    left, right = "tab:purple", "tab:blue"
    ax.plot(*_points(stats, stat), "-", lw=1, color=left)
    ax.set_ylabel(stat, fontsize=7, color=left)
    twin = ax.twinx()
    twin.plot(*_points(metrics, metric), "o-", lw=1, ms=3, color=right)
    twin.set_ylabel(f"val {metric}", fontsize=7, color=right)
    _floor(twin, metrics, metric)
    ax.set_title(f"{stat} beside val {metric}", fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    for a in (ax, twin):
        a.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _keys(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, int | float):
                seen.setdefault(k, None)
    return list(seen)
