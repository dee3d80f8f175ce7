"""Class structure of a run's latent space: k-means clusters and the M1 linear probe, one call each
(the work is in ``genlab.clustering``; these add the run, its data and the files they write)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..clustering import PER_CLUSTER, Clustering, cluster, probe
from ..errors import GenlabError
from ..runs import Run, data_for_run, load_model, open_run
from ..training import resolve_device
from .inference import need_encoder

RunLike = Run | str | Path


@dataclass
class ClusterReport:
    """What ``cluster_run`` found and wrote: the clustering, a readable name per method, the picture (None
    for points) and the facts of the run (``info``), as written to the JSON."""

    found: Clustering
    methods: dict[str, str]  # method key -> readable name
    labelled: bool
    picture: Path | None
    info: dict


def cluster_run(run: RunLike, output: str | Path | None = None, *, k: int = 10, split: str | None = None,
                seed: int = 0, data: str | None = None, report_json: str | Path | None = None, which: str = "best",
                device: str = "cpu") -> ClusterReport:
    """k-means with ``k`` clusters on the run's latent means and on pixels (and the model's own clusters when it
    ``Clusters``), scored against labels when the data has them; ``output``: a PNG, a row per cluster of the
    items nearest its centre; ``report_json``: the scores and ``info``."""
    split = split or "all"
    if split not in ("train", "val", "test", "all"):
        raise GenlabError(f"--split {split!r}: use train, val, test or all")
    run = run if isinstance(run, Run) else open_run(run)
    model, config = load_model(run, which=which, device=resolve_device(device))
    need_encoder(model, config.model, "cluster")
    dataset = data_for_run(config, data)
    found = cluster(model, dataset, k=k, split=split, seed=seed)
    methods = {"latent_kmeans": f"k-means on latent ({found.latent_dim}-d)",
               "pixel_kmeans": "k-means on raw coordinates" if dataset.kind == "points" else "k-means on pixels",
               "model": "model q(y|x) argmax"}
    picture = None
    if dataset.kind == "image" and output is not None:
        from ..pictures.grids import save_image_grid

        picture = save_image_grid(torch.cat([dataset.images(r) for r in found.rows]), Path(output), PER_CLUSTER)
    info = {"run": str(run.path), "data": dataset.name, "split": split, "items": int(len(found.index)), "k": k,
            "seed": seed, "latent_dim": found.latent_dim, "model_components": found.components,
            "picture_rows": f"{k} latent k-means clusters (nearest to the centre)"
                            + ("" if found.components is None else ", then the model's components (highest q(y|x))")}
    if report_json is not None:
        Path(report_json).write_text(json.dumps({**found.scores, "info": info}, indent=2))
    return ClusterReport(found, methods, dataset.y is not None, picture, info)


def probe_run(run: RunLike, *, labels: int = 100, seed: int = 0, data: str | None = None,
              report_json: str | Path | None = None, which: str = "best", device: str = "cpu") -> dict:
    """The M1 linear probe of a run (``genlab.clustering.probe``): test accuracy on latent means and on pixels
    with ``labels`` balanced training labels; ``report_json`` writes {latent, pixels, labels, seed}."""
    model, config = load_model(run if isinstance(run, Run) else open_run(run), which=which,
                               device=resolve_device(device))
    need_encoder(model, config.model, "be probed")
    result = probe(model, data_for_run(config, data), labels=labels, seed=seed)
    if report_json is not None:
        Path(report_json).write_text(json.dumps({"latent": result["latent"], "pixels": result["pixels"],
                                                 "labels": labels, "seed": seed}, indent=2))
    return result
