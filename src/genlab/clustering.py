"""How much class structure a model's latent space holds: k-means on codes, a linear probe.

* ``cluster``: k-means on the latent means (``model.encode``) beside k-means on raw pixels (the
  baseline every deep-clustering paper starts from: DEC, Xie et al. 2016), and, for a model that
  ``Clusters`` (a mixture prior, e.g. gmvae), its own argmax q(y|x). Scores: Hungarian cluster
  accuracy, NMI, ARI.
* ``probe``: the M1 protocol of Kingma et al. 2014: a linear classifier (standardised logistic
  regression) fitted on the codes of a balanced labelled subset of the train split, tested on the
  test split, beside the same classifier on pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .data import DataSet
from .errors import GenlabError
from .evaluation.cluster_metrics import balanced_subset, cluster_scores, kmeans, linear_probe, nearest_to_centres
from .models.capabilities import Clusters, Encodes

PER_CLUSTER = 10  # images per row of the cluster picture


@torch.no_grad()
def codes(model: Encodes, data: DataSet, index: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """Latent means (N, D) and, for a model that ``Clusters``, its q(y|x) (N, K) of the items at ``index``."""
    z, probs = [], []
    for chunk in index.split(500):
        x = data.images(chunk).to(model.device)
        z.append(model.encode(x).cpu())
        if isinstance(model, Clusters):
            probs.append(model.cluster_probs(x).cpu())
    return torch.cat(z).numpy(), (torch.cat(probs).numpy() if probs else None)


@dataclass
class Clustering:
    """What ``cluster`` found: per method its cluster of every item, scores against labels (when known),
    and the picture's rows (item indices: per k-means cluster those nearest its centre, then per model
    component the items it is most sure of)."""

    index: torch.Tensor  # (N,) the items clustered
    latent_dim: int
    assignments: dict[str, np.ndarray]  # method -> (N,) cluster of each item
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> cluster_acc, nmi, ari
    rows: list[torch.Tensor] = field(default_factory=list)
    components: int | None = None  # the model's own clusters, when it has them


def cluster(model: Encodes, data: DataSet, *, k: int = 10, split: str = "all", seed: int = 0) -> Clustering:
    """k-means with k clusters on the latent means and on the pixels (and the model's own clusters)."""
    if k < 2:
        raise GenlabError("--k must be at least 2")
    if split != "all" and split not in data.splits:
        raise GenlabError(f"{data.name} has no {split!r} split: use --split all")
    model.eval()
    index = data.indices(split)
    if len(index) < k:
        raise GenlabError(f"--k {k} clusters for {len(index)} items: use a smaller --k")
    z, probs = codes(model, data, index)
    labels, centres = kmeans(z, k, seed)
    found = Clustering(index, int(z.shape[1]), {"latent_kmeans": labels})
    found.assignments["pixel_kmeans"] = kmeans(data.images(index).flatten(1).numpy(), k, seed)[0]
    found.rows = [index[torch.as_tensor(r)] for r in nearest_to_centres(z, centres, PER_CLUSTER)]
    if probs is not None:
        found.assignments["model"] = probs.argmax(1)
        found.components = int(probs.shape[1])
        found.rows += [index[torch.as_tensor(np.argsort(-probs[:, c], kind="stable")[:PER_CLUSTER])]
                       for c in range(probs.shape[1]) if (found.assignments["model"] == c).any()]
    if data.y is not None:
        y = data.y[index].numpy()
        found.scores = {key: cluster_scores(y, a) for key, a in found.assignments.items()}
    return found


def probe(model: Encodes, data: DataSet, *, labels: int = 100, seed: int = 0) -> dict[str, float]:
    """Test accuracy of a linear probe on the latent means and on the pixels, fitted on ``labels`` balanced
    train examples: {"latent", "pixels", "latent_dim", "test_items"}."""
    model.eval()
    if data.y is None:
        raise GenlabError(f"{data.name} has no labels, so there is nothing to probe")
    if not {"train", "test"} <= set(data.splits):
        raise GenlabError(f"{data.name} needs train and test splits for a probe")
    train_idx, test_idx = data.indices("train"), data.indices("test")
    try:
        chosen = balanced_subset(data.y[train_idx].numpy(), labels, seed, classes=data.num_classes)
    except ValueError as err:
        raise GenlabError(f"--labels {labels}: {err}") from None
    lab_idx = train_idx[torch.as_tensor(chosen)]
    z_lab, _ = codes(model, data, lab_idx)
    z_test, _ = codes(model, data, test_idx)
    y_lab, y_test = data.y[lab_idx].numpy(), data.y[test_idx].numpy()
    latent = linear_probe(z_lab, y_lab, z_test, y_test, seed=seed)
    pixels = linear_probe(data.images(lab_idx).flatten(1), y_lab, data.images(test_idx).flatten(1), y_test, seed=seed)
    return {"latent": latent, "pixels": pixels, "latent_dim": int(z_lab.shape[1]), "test_items": int(len(test_idx))}
