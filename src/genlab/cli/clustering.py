"""``genlab cluster``, ``genlab probe`` and ``genlab analogies``: each one call of ``genlab.api``."""

from __future__ import annotations

from .common import check_output, out

HUNGARIAN_NOTE = ("cluster_acc uses Hungarian matching (one cluster per class): stricter than "
                  "mapping each cluster to its majority class")


def _table(rows: dict[str, dict[str, float]], names: dict[str, str]) -> str:
    lines = [f"{'method':<28}{'cluster_acc':>12}{'nmi':>8}{'ari':>8}"]
    for key, s in rows.items():
        lines.append(f"{names[key]:<28}{s['cluster_acc']:>12.3f}{s['nmi']:>8.3f}{s['ari']:>8.3f}")
    return "\n".join(lines)


def cmd_cluster(args) -> int:
    from ..api.clustering import cluster_run

    target = check_output(args.output, (".png",))
    json_out = check_output(args.json, (".json",)) if args.json else None
    got = cluster_run(args.run, target, k=args.k, split=args.split, seed=args.seed, data=args.data,
                      report_json=json_out, which=args.checkpoint, device=args.device)
    if got.found.components is not None:
        out(f"this model clusters by itself: its own q(y|x) over {got.found.components} components is scored too")
    if got.labelled:
        out(_table(got.found.scores, got.methods))
        out(HUNGARIAN_NOTE)
    else:
        out(f"{got.info['data']} has no labels: no scores, only the picture")
    if got.picture is not None:
        out(f"wrote {got.picture}: one row per cluster ({got.info['picture_rows']})")
    else:
        out("points data: no picture")
    if json_out:
        out(f"wrote {json_out}")
    return 0


def cmd_probe(args) -> int:
    from ..api.clustering import probe_run

    json_out = check_output(args.json, (".json",)) if args.json else None
    result = probe_run(args.run, labels=args.labels, seed=args.seed, data=args.data, report_json=json_out,
                       which=args.checkpoint, device=args.device)
    out(f"linear probe (M1, Kingma et al. 2014): {args.labels} balanced train labels "
        f"(seed {args.seed}), {result['test_items']} test items")
    out(f"{'features':<28}{'test accuracy':>14}")
    features = f"latent means ({result['latent_dim']}-d)"
    out(f"{features:<28}{result['latent']:>14.3f}")
    out(f"{'pixels':<28}{result['pixels']:>14.3f}")
    if json_out:
        out(f"wrote {json_out}")
    return 0


def cmd_analogies(args) -> int:
    """One row per held-out input: the input, then its style code z decoded with every class."""
    from ..api.latent import write_analogies

    target = check_output(args.output, (".png",))
    classes = write_analogies(args.run, target, n=args.n, seed=args.seed, data=args.data, split=args.split,
                              which=args.checkpoint, device=args.device)
    out(f"wrote {target}: a row per held-out input (first column), then its z decoded with each class "
        f"0..{classes - 1}")
    return 0
