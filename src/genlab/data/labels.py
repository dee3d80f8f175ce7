"""A labels budget: which training labels a model may see, for semi-supervised learning.

``balanced_subset`` draws N labelled examples, N / C of each of the C classes, with a seed (the
protocol of Kingma et al. 2014). ``with_label_budget`` returns a view of a data set whose train
batches carry the label of only those examples: every other training item gets ``y = -1``
(``HIDDEN``), so a model learns from it as unlabelled data; ``label_share`` repeats the labelled
items so that they make up that share of the batches. Validation and test labels, and the
data set's own ``y`` (what evaluation reads), are untouched. The trainer knows nothing of this:
the mask lives in the data set and ``batch_dict`` applies it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import GenlabError
from .base import DataSet

HIDDEN = -1  # the label a batch carries for an example whose label is hidden


def balanced_subset(y, n: int, seed: int = 0, *, classes: int | None = None) -> np.ndarray:
    """Indices into y of n examples, n / C of each of the C classes, drawn with ``seed``; sorted.

    One ``numpy.random.default_rng(seed)`` draws each class's examples in increasing class order.
    Raises ValueError (with a sentence for the user) when n is not a positive multiple of C or a
    class has fewer than n / C examples.
    """
    y = np.asarray(y.cpu() if hasattr(y, "cpu") else y).reshape(-1).astype(np.int64)
    values = np.arange(classes) if classes else np.unique(y)
    c = len(values)
    if n < c or n % c:
        raise ValueError(f"{n} labels cannot be split evenly over {c} classes: use a multiple of {c}")
    if n > len(y):
        raise ValueError(f"{n} labels but the train split has only {len(y)} examples")
    per = n // c
    rng = np.random.default_rng(seed)
    picked = []
    for v in values:
        pool = np.flatnonzero(y == v)
        if len(pool) < per:
            raise ValueError(f"class {v} has {len(pool)} train examples, fewer than the {per} asked for")
        picked.append(rng.choice(pool, size=per, replace=False))
    return np.sort(np.concatenate(picked))


def labelled_train_indices(data: DataSet, n: int, seed: int = 0) -> Tensor:
    """(n,) indices into ``data`` of a balanced labelled subset of its train split (sorted)."""
    if data.y is None:
        raise GenlabError(f"{data.name} has no labels, so there are none to keep")
    if "train" not in data.splits:
        raise GenlabError(f"{data.name} has no train split to draw labelled examples from")
    train = data.indices("train")
    try:
        chosen = balanced_subset(data.y[train].numpy(), n, seed, classes=data.num_classes)
    except ValueError as err:
        raise GenlabError(f"labels budget {n}: {err}") from None
    return train[torch.as_tensor(chosen)]


def repeats_for_share(n_labelled: int, n_unlabelled: int, share: float | None) -> int:
    """How many times each labelled item appears per pass so that labelled items make up about
    ``share`` of the training items (at least once; None: once, their natural share)."""
    if share is None or n_labelled == 0:
        return 1
    if not 0 < share < 1:
        raise GenlabError(f"label_share={share}: must be between 0 and 1")
    return max(1, round(share * n_unlabelled / ((1 - share) * n_labelled)))


def with_label_budget(data: DataSet, n: int, seed: int = 0, *, share: float | None = None
                      ) -> tuple[DataSet, Tensor]:
    """A view of ``data`` whose train batches show only n labels (balanced, drawn with ``seed``).

    Returns the view and the (n,) indices of the labelled examples. With ``share`` the labelled
    items are repeated in the view's ``train_plan`` so that they make up about that share of each
    pass (a batch then holds labelled and unlabelled items in that ratio, as in most M2 training
    code, instead of the natural n / len(train), a few per batch); an "epoch" is then one pass over
    that plan. Items outside the train split keep their labels in batches too (training only ever
    draws from the train split).
    """
    chosen = labelled_train_indices(data, n, seed)
    train = data.indices("train")
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[train] = False
    mask[chosen] = True
    unlabelled = train[~mask[train]]
    plan = torch.cat([unlabelled, chosen.repeat(repeats_for_share(len(chosen), len(unlabelled), share))])
    return dataclasses.replace(data, label_mask=mask, train_plan=plan.sort().values), chosen


def write_label_record(path: Path, data: DataSet, chosen: Tensor, *, n: int, seed: int,
                       share: float | None = None) -> Path:
    """``labelled.json``: the budget, its seed, per-class counts and the labelled indices."""
    counts = torch.bincount(data.y[chosen], minlength=data.num_classes or 0).tolist()
    plan = data.train_plan if data.train_plan is not None else data.indices("train")
    repeats = int((plan == chosen[0]).sum()) if len(chosen) else 0
    record = {"data": data.name, "labels": n, "seed": seed, "split": "train", "per_class": counts,
              "label_share": share, "repeats_per_pass": repeats, "indices": chosen.tolist(),
              "hidden_label": HIDDEN,
              "note": "indices into the whole data set; every other train example is unlabelled"}
    path = Path(path)
    path.write_text(json.dumps(record, indent=1))
    return path
