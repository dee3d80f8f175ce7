"""``genlab cluster``, ``genlab probe`` and ``genlab analogies`` (the work is in ``genlab.clustering`` and
``genlab.pictures.run_pictures``)."""

from __future__ import annotations

import json

import torch

from ..api.inference import eval_split, need_encoder
from ..clustering import PER_CLUSTER, cluster, probe
from ..errors import GenlabError
from ..runs import data_for_run
from .common import check_output, load, models_declaring, out, spoken_list

HUNGARIAN_NOTE = ("cluster_acc uses Hungarian matching (one cluster per class): stricter than "
                  "mapping each cluster to its majority class")


def _table(rows: dict[str, dict[str, float]], names: dict[str, str]) -> str:
    lines = [f"{'method':<28}{'cluster_acc':>12}{'nmi':>8}{'ari':>8}"]
    for key, s in rows.items():
        lines.append(f"{names[key]:<28}{s['cluster_acc']:>12.3f}{s['nmi']:>8.3f}{s['ari']:>8.3f}")
    return "\n".join(lines)


def cmd_cluster(args) -> int:
    from ..pictures.grids import save_image_grid

    target = check_output(args.output, (".png",))
    json_out = check_output(args.json, (".json",)) if args.json else None
    if args.k < 2:
        raise GenlabError("--k must be at least 2")
    run, model, config = load(args)
    need_encoder(model, config.model, "cluster")
    data = data_for_run(config, args.data)
    split = args.split or "all"
    if split not in ("train", "val", "test", "all"):
        raise GenlabError(f"--split {split!r}: use train, val, test or all")
    found = cluster(model, data, k=args.k, split=split, seed=args.seed)
    names = {"latent_kmeans": f"k-means on latent ({found.latent_dim}-d)",
             "pixel_kmeans": "k-means on raw coordinates" if data.kind == "points" else "k-means on pixels",
             "model": "model q(y|x) argmax"}
    if found.components is not None:
        out(f"this model clusters by itself: its own q(y|x) over {found.components} components is scored too")
    picture = None
    if data.kind == "image":
        picture = save_image_grid(torch.cat([data.images(r) for r in found.rows]), target, PER_CLUSTER)
    info = {"run": str(run.path), "data": data.name, "split": split, "items": int(len(found.index)),
            "k": args.k, "seed": args.seed, "latent_dim": found.latent_dim, "model_components": found.components,
            "picture_rows": f"{args.k} latent k-means clusters (nearest to the centre)"
                            + ("" if found.components is None else ", then the model's components (highest q(y|x))")}
    if data.y is None:
        out(f"{data.name} has no labels: no scores, only the picture")
    else:
        out(_table(found.scores, names))
        out(HUNGARIAN_NOTE)
    if picture is not None:
        out(f"wrote {picture}: one row per cluster ({info['picture_rows']})")
    else:
        out("points data: no picture")
    if json_out:
        json_out.write_text(json.dumps({**found.scores, "info": info}, indent=2))
        out(f"wrote {json_out}")
    return 0


def cmd_probe(args) -> int:
    json_out = check_output(args.json, (".json",)) if args.json else None
    _, model, config = load(args)
    need_encoder(model, config.model, "be probed")
    result = probe(model, data_for_run(config, args.data), labels=args.labels, seed=args.seed)
    out(f"linear probe (M1, Kingma et al. 2014): {args.labels} balanced train labels "
        f"(seed {args.seed}), {result['test_items']} test items")
    out(f"{'features':<28}{'test accuracy':>14}")
    features = f"latent means ({result['latent_dim']}-d)"
    out(f"{features:<28}{result['latent']:>14.3f}")
    out(f"{'pixels':<28}{result['pixels']:>14.3f}")
    if json_out:
        json_out.write_text(json.dumps({"latent": result["latent"], "pixels": result["pixels"],
                                        "labels": args.labels, "seed": args.seed}, indent=2))
        out(f"wrote {json_out}")
    return 0


def cmd_analogies(args) -> int:
    """One row per held-out input: the input, then its style code z decoded with every class."""
    from ..latent import is_conditional_encoder
    from ..pictures.run_pictures import analogy_picture

    target = check_output(args.output, (".png",))
    if args.n < 1:
        raise GenlabError("-n must be at least 1")
    _, model, config = load(args)
    need_encoder(model, config.model, "make analogies")
    if not is_conditional_encoder(model):
        able = spoken_list(models_declaring("ClassConditional", "Encodes"))
        raise GenlabError(f"a {config.model!r} model is not class-conditional, so it cannot make analogies "
                          f"({able} are)")
    data = data_for_run(config, args.data)
    if data.kind != "image":
        raise GenlabError(f"{data.name} holds points, not images: analogies are a picture of images")
    analogy_picture(model, data, target, n=args.n, seed=args.seed, split=eval_split(args.split, args.data is None))
    out(f"wrote {target}: a row per held-out input (first column), then its z decoded with each class "
        f"0..{model.num_classes - 1}")
    return 0
