"""More training must not give a worse model: each family's default command trained for its benchmarked
CPU budget B, then resumed to 2B and 4B, and the weights the run keeps scored on held-out data at each.

    python benchmarks/longer_training.py [--families infogan gmvae dcign vae m2] [--seeds 0] \\
        [--rows benchmarks/results/longer_training_rows.jsonl] --json benchmarks/results/longer_training.json \\
        [--plot benchmarks/results/longer_training.png] | tee benchmarks/results/longer_training.txt

Per (family, seed): ``genlab train MODEL --data DATA --cpu-time B --seed S --set train.threads=1`` (the
family's documented command and budget, one thread as its benchmark), then ``--resume`` with ``--cpu-time B``
and ``--cpu-time 2B`` (a resume's budget is added; it continues exactly). After each slice ``genlab evaluate``
scores the family's quality metric on the test split twice: with the weights the run keeps (best.pt, which
``genlab sample`` and ``evaluate`` load; the last weights when the family keeps no best.pt) and with the last
weights. The validation trajectory (``metrics.jsonl``) is kept beside it, and ``--plot`` draws it against
CPU-minutes, one panel per family: quality against time, to 4B. Jobs run ``--parallel`` at a time,
each in its own processes; CPU-time budgets make a busy machine slower, not different.

A finished (family, seed) is appended to ``--rows`` as one JSON line and reused when run again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# family -> (model, data options, budget B in CPU-minutes (its benchmark's / docs' command), metric, higher is better)
FAMILIES = {
    "infogan": ("infogan", ["--data", "mnist5k"], 15.0, "code_acc", True),
    "gmvae": ("gmvae", ["--data", "mnist5k"], 10.0, "cluster_acc", True),
    "dcign": ("dcign", ["--data", "shapes"], 6.0, "view_iou", True),
    "vae": ("vae", ["--data", "mnist5k"], 3.0, "nll", False),
    "m2": ("m2", ["--data", "mnist5k", "--labels", "100"], 3.0, "accuracy", True),
    "gan": ("gan", ["--data", "mnist5k"], 1.0, "fd", False),
}
MULTIPLES = (1, 2, 4)  # of B: the slices end here


def _genlab(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "genlab", "-q", *args], check=True, capture_output=True,
                          text=True, env=env)
    return done.stdout


def _score(run: Path, metric: str, checkpoint: str, out: Path) -> float:
    _genlab("evaluate", str(run), "--metrics", metric, "--checkpoint", checkpoint, "--json", str(out))
    return float(json.loads(out.read_text())["values"][metric])


def _last_line(path: Path) -> dict:
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else {}


def replay_selection(validation: list[dict], until_step: int, metric: str = "fd", tolerance: float = 0.5,
                     higher: bool = False) -> dict | None:
    """The validation row whose weights best.pt would hold at ``until_step`` under ``train.select_metric=metric``
    and ``train.select_tolerance=tolerance`` (the trainer's rule, ``keeps_weights``), replayed on a run's log."""
    from genlab.training.trainer import keeps_weights

    seen, kept = None, None
    for row in validation:
        if row["step"] > until_step or metric not in row:
            continue
        keep, seen = keeps_weights(row[metric], seen, higher=higher, tolerance=tolerance)
        kept = row if keep else kept
    return kept


def run_family(family: str, seed: int, runs: Path) -> dict:
    model, data, budget, metric, _ = FAMILIES[family]
    folder = runs / f"{family}-{seed}"
    slices = []
    run = None
    done_multiple = 0
    t0 = time.perf_counter()
    for multiple in MULTIPLES:
        minutes = budget * (multiple - done_multiple)
        common = ["--cpu-time", f"{minutes * 60:g}s", "--no-final", "--set", "train.threads=1"]
        if run is None:
            _genlab("train", model, *data, "--seed", str(seed), "--runs", str(folder), *common)
            (run,) = folder.iterdir()
        else:
            _genlab("train", model, *data, "--resume", str(run), *common)
        done_multiple = multiple
        kept = _score(run, metric, "best", folder / f"kept_{multiple}x.json")
        last = _score(run, metric, "last", folder / f"last_{multiple}x.json")
        step = _last_line(run / "metrics.jsonl").get("step")  # the slice's closing validation
        slices.append({"multiple": multiple, "cpu_minutes": budget * multiple, "step": step,
                       "kept": kept, "last": last})
        print(f"{family} seed {seed} {multiple}x B ({budget * multiple:g} CPU-min, step {step}): "
              f"{metric} kept {kept:.4g}, last {last:.4g}", flush=True)
    validation = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()
                  if '"val"' in ln] if (run / "metrics.jsonl").exists() else []
    train = json.loads((run / "config.json").read_text())["train"]
    selection = {k: train.get(k) for k in ("select_metric", "select_tolerance")}  # how best.pt was chosen
    return {"family": family, "seed": seed, "model": model, "data": data, "budget_minutes": budget,
            "metric": metric, "slices": slices, "validation": validation, "selection": selection,
            "run": str(run), "wall_seconds": time.perf_counter() - t0}


def selection_label(row: dict) -> str:
    """How the row's run chose best.pt: ``last``, ``auto`` (the family's first metric), or ``fd+-50%``."""
    sel = row["selection"]
    tolerance = f"+-{sel['select_tolerance']:.0%}" if sel.get("select_tolerance") else ""
    return f"{sel['select_metric']}{tolerance}"


def cpu_minutes(row: dict, step: int) -> float:
    """CPU-minutes of training at ``step``: the run's own record (``cpu_time`` on each validation line), or for
    rows from before it was logged, interpolated between the slices' ends (step 0 at 0, each slice at its budget)."""
    logged = next((v["cpu_time"] for v in row["validation"] if v["step"] == step and "cpu_time" in v), None)
    if logged is not None:
        return logged / 60
    ends = [(0, 0.0)] + [(s["step"], s["cpu_minutes"]) for s in row["slices"]]
    for (s0, m0), (s1, m1) in itertools.pairwise(ends):
        if step <= s1:
            return m0 + (m1 - m0) * (step - s0) / max(1, s1 - s0)
    return ends[-1][1]


def plot(rows: list[dict], out: Path) -> None:
    """One panel per family: its validation metric against CPU-minutes for each seed (the line), and the test
    score of the weights kept at B, 2B and 4B (the dots); the family's own metric where validation logs it,
    else the ELBO (the VAE: its test NLL is the IWAE bound, too slow to take every 1,000 steps)."""
    from matplotlib.figure import Figure

    families = list(dict.fromkeys(r["family"] for r in rows))
    fig = Figure(figsize=(4.2 * len(families), 3.4))
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    for ax, family in zip(axes, families, strict=True):
        mine = [r for r in rows if r["family"] == family]
        metric = mine[0]["metric"]
        twin = None  # the test metric's own axis, when validation shows another quantity
        for row in mine:
            shown = metric if any(metric in v for v in row["validation"]) else "elbo"
            points = [(cpu_minutes(row, v["step"]), v[shown]) for v in row["validation"] if shown in v]
            line = None
            if points:
                line, = ax.plot([p[0] for p in points], [p[1] for p in points], "-", lw=1,
                                label=f"seed {row['seed']}: val {shown}")
            if shown != metric and twin is None:
                twin = ax.twinx()
                twin.set_ylabel(f"test {metric} (dots)")
            (ax if shown == metric else twin).plot(
                [s["cpu_minutes"] for s in row["slices"]], [s["kept"] for s in row["slices"]], "o",
                color=line.get_color() if line else None, label=f"seed {row['seed']}: test {metric}, kept")
        for s in mine[0]["slices"]:
            ax.axvline(s["cpu_minutes"], color="0.85", lw=0.8, zorder=0)
        ax.set(title=f"{family} ({mine[0]['budget_minutes']:g} CPU-min = B)", xlabel="CPU-minutes of training")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    from genlab.training.speed import cpu_description

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=["infogan", "gmvae", "dcign", "vae", "m2"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--runs", default=None, help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--rows", default=None, help="JSON lines of finished (family, seed), appended and reused")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=None, help="PNG of each family's quality against CPU-minutes")
    args = p.parse_args()
    runs = Path(args.runs or tempfile.mkdtemp(prefix="genlab-longer-"))
    runs.mkdir(parents=True, exist_ok=True)
    rows_path = Path(args.rows) if args.rows else None
    cached = {}
    if rows_path and rows_path.exists():
        for line in rows_path.read_text().splitlines():
            row = json.loads(line)
            cached[(row["family"], row["seed"])] = row
    jobs = [(f, s) for f in args.families for s in args.seeds if (f, s) not in cached]

    def job(key):
        row = run_family(*key, runs)
        if rows_path:
            with rows_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        return row

    with ThreadPoolExecutor(args.parallel) as pool:
        fresh = list(pool.map(job, jobs))
    rows = [cached.get((f, s)) or next(r for r in fresh if (r["family"], r["seed"]) == (f, s))
            for f in args.families for s in args.seeds]

    print(f"\nCPU: {cpu_description()}; one thread a run; scored on the test split; medians over seeds")
    print(f"{'family':<8} {'metric':<12} {'best.pt by':<10} {'B':>5} {'seeds':>5} "
          + " ".join(f"{f'{m}x kept':>9} {f'{m}x last':>9}" for m in MULTIPLES) + "  steps at 1x/2x/4x")
    summary = {}
    for family in args.families:
        model, _, budget, metric, higher = FAMILIES[family]
        groups: dict[str, list[dict]] = {}
        for r in rows:
            if r["family"] == family:
                groups.setdefault(selection_label(r), []).append(r)
        for label, mine in groups.items():
            med = {(m, w): statistics.median(r["slices"][i][w] for r in mine)
                   for i, m in enumerate(MULTIPLES) for w in ("kept", "last")}
            steps = "/".join(str(statistics.median(r["slices"][i]["step"] for r in mine))
                             for i in range(len(MULTIPLES)))
            print(f"{family:<8} {metric:<12} {label:<10} {budget:>4g}m {len(mine):>5} "
                  + " ".join(f"{med[(m, 'kept')]:>9.4g} {med[(m, 'last')]:>9.4g}" for m in MULTIPLES) + f"  {steps}")
            for r in mine:
                print(f"{'':<8} seed {r['seed']}: kept " + " / ".join(f"{s['kept']:.4g}" for s in r["slices"])
                      + ", last " + " / ".join(f"{s['last']:.4g}" for s in r["slices"]))
            sign = 1 if higher else -1
            summary[f"{family} ({label})"] = {
                "metric": metric, "higher_is_better": higher, "budget_minutes": budget, "selection": label,
                "seeds": [r["seed"] for r in mine], "median": {f"{m}x_{w}": v for (m, w), v in med.items()},
                "kept_not_worse_at_2x_4x": all(sign * med[(m, "kept")] >= sign * med[(1, "kept")]
                                               for m in MULTIPLES[1:])}
    replays = {}
    for row in rows:  # InfoGAN's default picks best.pt this way; the runs above predate it and kept the last
        if row["family"] != "infogan":
            continue
        picks = [replay_selection(row["validation"], s["step"]) for s in row["slices"]]
        replays[f"{row['family']}-{row['seed']}"] = picks
        metric = row["metric"]
        print(f"{row['family']} seed {row['seed']}: best.pt under select_metric=fd, select_tolerance=0.5, replayed "
              f"on the validation log: " + "; ".join(
                  f"{m}x -> step {p['step']} (fd {p['fd']:.2f}, val {metric} {p.get(metric, float('nan')):.3f})"
                  for m, p in zip(MULTIPLES, picks, strict=True) if p))
    if args.plot:
        plot(rows, Path(args.plot))
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_description(), "seeds": args.seeds, "rows": rows,
                                               "summary": summary, "replayed_selection": replays}, indent=2))


if __name__ == "__main__":
    main()
