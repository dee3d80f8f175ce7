"""``genlab report RUN [RUN ...] -o report.html``: each run's record as one HTML page.

Per run: its config, the curves of loss and metrics over training, the pictures it left (samples,
reconstructions, interpolations, latent maps, D's field), and its test metrics beside the
real-vs-real floor; several runs also get one table of all their metrics side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import GenlabError
from .html import esc, image, page, table

#: the pictures a run folder may hold, in reading order, with what they show
PICTURES = (
    ("curves.png", "loss and metrics over training (dashed: the real-vs-real floor)"),
    ("samples.png", "samples"),
    ("recon.png", "held-out inputs (top rows) and their reconstructions"),
    ("interp.png", "linear interpolation between held-out images"),
    ("interp_slerp.png", "spherical interpolation"),
    ("latent.png", "codes of held-out data, coloured by label"),
    ("manifold.png", "the decoder over a 2-D latent grid"),
    ("dfield.png", "D's output over the plane with G's gradient arrows"),
    ("analogies.png", "each input's style with every class"),
)


def read_metrics(run: Path) -> dict:
    """The run's test metrics ({"values", "floor", ...}); empty when it has none."""
    path = Path(run) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {"values": {}, "floor": {}}


def metrics_rows(metrics: dict) -> list[tuple]:
    from ..registry import METRICS

    rows = []
    for name, value in metrics.get("values", {}).items():
        metric = METRICS.get(name) if name in METRICS else None
        arrow = "" if metric is None else ("↑" if metric.higher_is_better else "↓")
        rows.append((name, value, metrics.get("floor", {}).get(name, "–"), arrow))
    return rows


def run_section(run: Path, *, pictures: bool = True) -> str:
    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    parts = [f"<h2>{esc(run.name)}</h2>",
             f"<p>model <b>{esc(config.get('model'))}</b> on <b>{esc(config.get('data', {}).get('spec'))}</b></p>"]
    rows = metrics_rows(read_metrics(run))
    if rows:
        parts.append(table(("metric", "value", "real-vs-real", "better"), rows))
    if pictures:
        parts += [image(run / name, caption) for name, caption in PICTURES]
    parts.append(f"<details><summary>config.json</summary><pre>{esc(json.dumps(config, indent=2))}</pre></details>")
    return "".join(parts)


def comparison_table(runs: list[Path]) -> str:
    """One row per metric, one column per run."""
    all_metrics = [read_metrics(r) for r in runs]
    names = list(dict.fromkeys(k for m in all_metrics for k in m.get("values", {})))
    rows = [(n, *(m.get("values", {}).get(n, "–") for m in all_metrics),
             next((m["floor"][n] for m in all_metrics if n in m.get("floor", {})), "–")) for n in names]
    return table(("metric", *(r.name for r in runs), "real-vs-real"), rows)


def write_report(runs: list[str | Path], out: str | Path) -> Path:
    folders = [Path(r) for r in runs]
    for f in folders:
        if not (f / "config.json").is_file():
            raise GenlabError(f"{f} is not a run folder (no config.json)")
    body = ""
    if len(folders) > 1:
        body += "<h2>All runs</h2>" + comparison_table(folders)
        body += '<div class="runs">' + "".join(f"<div>{run_section(f)}</div>" for f in folders) + "</div>"
    else:
        body += run_section(folders[0])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page("genlab report", body), encoding="utf-8")
    return out

