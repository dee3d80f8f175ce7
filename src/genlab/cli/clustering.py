"""``genlab cluster``, ``genlab probe`` and ``genlab analogies``: how much class structure a run's
latent space holds.

* cluster: k-means on the latent means (``model.encode``) beside k-means on raw pixels (the
  baseline every deep-clustering paper starts from: DEC, Xie et al. 2016), and, for a model with
  ``cluster_probs`` (a mixture prior, e.g. gmvae), its own argmax q(y|x). Scores: Hungarian
  cluster accuracy, NMI, ARI; a PNG with one row per cluster.
* probe: the M1 protocol of Kingma et al. 2014: a linear classifier (standardised logistic
  regression) fitted on the codes of a balanced labelled subset of the train split, tested on the
  test split, beside the same classifier on pixels.
* analogies: for a class-conditional encoder model (cvae, m2), held-out inputs with their style
  code z kept and the class changed (Kingma et al. 2014, Fig. 1).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import torch

from ..errors import GenlabError
from ..evaluation.cluster_metrics import balanced_subset, cluster_scores, kmeans, linear_probe, nearest_to_centres
from .commands import _check_output, _load, _need_encoder, _out, _split, data_for_run

log = logging.getLogger("genlab")

PER_CLUSTER = 10  # images per row of the cluster picture
HUNGARIAN_NOTE = ("cluster_acc uses Hungarian matching (one cluster per class): stricter than "
                  "mapping each cluster to its majority class")


@torch.no_grad()
def _codes(model, data, index: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """Latent means (N, D) and, when the model has them, q(y|x) (N, K) of the items at ``index``."""
    z, probs = [], []
    for chunk in index.split(500):
        x = data.images(chunk).to(model.device)
        z.append(model.encode(x).cpu())
        if hasattr(model, "cluster_probs"):
            probs.append(model.cluster_probs(x).cpu())
    return torch.cat(z).numpy(), (torch.cat(probs).numpy() if probs else None)


def _table(rows: dict[str, dict[str, float]], names: dict[str, str]) -> str:
    lines = [f"{'method':<28}{'cluster_acc':>12}{'nmi':>8}{'ari':>8}"]
    for key, s in rows.items():
        lines.append(f"{names[key]:<28}{s['cluster_acc']:>12.3f}{s['nmi']:>8.3f}{s['ari']:>8.3f}")
    return "\n".join(lines)


def _cluster_split(args, data) -> str:
    split = args.split or "all"
    if split not in ("train", "val", "test", "all"):
        raise GenlabError(f"--split {split!r}: use train, val, test or all")
    if split != "all" and split not in data.splits:
        raise GenlabError(f"{data.name} has no {split!r} split: use --split all")
    return split


def cmd_cluster(args) -> int:
    from ..pictures.grids import save_image_grid

    out = _check_output(args.output, (".png",))
    json_out = _check_output(args.json, (".json",)) if args.json else None
    if args.k < 2:
        raise GenlabError("--k must be at least 2")
    run, model, config = _load(args)
    _need_encoder(model, config, "cluster")
    model.eval()
    data = data_for_run(config, args.data)
    split = _cluster_split(args, data)
    index = data.indices(split)
    if len(index) < args.k:
        raise GenlabError(f"--k {args.k} clusters for {len(index)} items: use a smaller --k")
    z, probs = _codes(model, data, index)
    labels, centres = kmeans(z, args.k, args.seed)
    assignments = {"latent_kmeans": labels}
    names = {"latent_kmeans": f"k-means on latent ({z.shape[1]}-d)", "pixel_kmeans": "k-means on pixels",
             "model": "model q(y|x) argmax"}
    if data.kind == "points":
        names["pixel_kmeans"] = "k-means on raw coordinates"
    assignments["pixel_kmeans"] = kmeans(data.images(index).flatten(1).numpy(), args.k, args.seed)[0]
    if probs is not None:
        assignments["model"] = probs.argmax(1)
        _out(f"this model clusters by itself: its own q(y|x) over {probs.shape[1]} components is scored too")
    # the picture: per k-means cluster the images nearest its centre; per model component the
    # images it is most sure of
    rows = [index[torch.as_tensor(r)] for r in nearest_to_centres(z, centres, PER_CLUSTER)]
    if probs is not None:
        rows += [index[torch.as_tensor(np.argsort(-probs[:, c], kind="stable")[:PER_CLUSTER])]
                 for c in range(probs.shape[1]) if (assignments["model"] == c).any()]
    picture = None
    if data.kind == "image":
        picture = save_image_grid(torch.cat([data.images(r) for r in rows]), out, PER_CLUSTER)
    info = {"run": str(run.path), "data": data.name, "split": split, "items": int(len(index)),
            "k": args.k, "seed": args.seed, "latent_dim": int(z.shape[1]),
            "model_components": None if probs is None else int(probs.shape[1]),
            "picture_rows": f"{args.k} latent k-means clusters (nearest to the centre)"
                            + ("" if probs is None else ", then the model's components (highest q(y|x))")}
    result: dict = {}
    if data.y is None:
        _out(f"{data.name} has no labels: no scores, only the picture")
    else:
        y = data.y[index].numpy()
        result = {key: cluster_scores(y, a) for key, a in assignments.items()}
        _out(_table(result, names))
        _out(HUNGARIAN_NOTE)
    if picture is not None:
        _out(f"wrote {picture}: one row per cluster ({info['picture_rows']})")
    else:
        _out("points data: no picture")
    if json_out:
        json_out.write_text(json.dumps({**result, "info": info}, indent=2))
        _out(f"wrote {json_out}")
    return 0


def cmd_probe(args) -> int:
    json_out = _check_output(args.json, (".json",)) if args.json else None
    run, model, config = _load(args)
    _need_encoder(model, config, "be probed")
    model.eval()
    data = data_for_run(config, args.data)
    if data.y is None:
        raise GenlabError(f"{data.name} has no labels, so there is nothing to probe")
    if not {"train", "test"} <= set(data.splits):
        raise GenlabError(f"{data.name} needs train and test splits for a probe")
    train_idx, test_idx = data.indices("train"), data.indices("test")
    try:
        chosen = balanced_subset(data.y[train_idx].numpy(), args.labels, args.seed,
                                 classes=data.num_classes)
    except ValueError as err:
        raise GenlabError(f"--labels {args.labels}: {err}") from None
    lab_idx = train_idx[torch.as_tensor(chosen)]
    z_lab, _ = _codes(model, data, lab_idx)
    z_test, _ = _codes(model, data, test_idx)
    y_lab, y_test = data.y[lab_idx].numpy(), data.y[test_idx].numpy()
    latent = linear_probe(z_lab, y_lab, z_test, y_test, seed=args.seed)
    pixels = linear_probe(data.images(lab_idx).flatten(1), y_lab, data.images(test_idx).flatten(1), y_test,
                          seed=args.seed)
    _out(f"linear probe (M1, Kingma et al. 2014): {args.labels} balanced train labels "
         f"(seed {args.seed}), {len(test_idx)} test items")
    _out(f"{'features':<28}{'test accuracy':>14}")
    _out(f"{f'latent means ({z_lab.shape[1]}-d)':<28}{latent:>14.3f}")
    _out(f"{'pixels':<28}{pixels:>14.3f}")
    if json_out:
        json_out.write_text(json.dumps({"latent": latent, "pixels": pixels, "labels": args.labels,
                                        "seed": args.seed}, indent=2))
        _out(f"wrote {json_out}")
    return 0


def cmd_analogies(args) -> int:
    """One row per held-out input: the input, then its style code z decoded with every class."""
    from ..latent import is_conditional_encoder
    from ..pictures.run_pictures import analogy_picture

    out = _check_output(args.output, (".png",))
    if args.n < 1:
        raise GenlabError("-n must be at least 1")
    _, model, config = _load(args)
    _need_encoder(model, config, "make analogies")
    if not is_conditional_encoder(model):
        raise GenlabError(f"a {config.model!r} model is not class-conditional, so it cannot make analogies "
                          "(cvae and m2 are)")
    data = data_for_run(config, args.data)
    if data.kind != "image":
        raise GenlabError(f"{data.name} holds points, not images: analogies are a picture of images")
    analogy_picture(model, data, out, n=args.n, seed=args.seed, split=_split(args, args.data is None))
    _out(f"wrote {out}: a row per held-out input (first column), then its z decoded with each class "
         f"0..{model.num_classes - 1}")
    return 0
