"""Examples named on the command line: image files, items of a data set, or a filter.

A reference is one of
* a path to an image file (converted to the model's channels and size: ``data.user_images``);
* ``SPLIT:I`` or ``SPLIT:I,J,...``: items of the run's data set by position in a split
  (``test:12``; splits train, val, test, all);
* ``label=K``: the first ``k`` items of class K in the split;
* ``MEASURE+`` / ``MEASURE-`` (``thickness+``, ``slant-``): ``k`` items from the upper / lower
  half of the measured values, one at the middle of each of k equal bins of its ranks, and balanced
  over classes when the data is labelled (k/C from each class's own half), so an attribute vector
  from them does not also carry a change of class. Not the k most extreme items: on a VAE trained
  on mnist5k their mean difference was 1.8x longer (|v| 4.9 against a mean |z| of 4.1) and, added at
  strength 1, changed the predicted class of 57% of digits. Taking the bins' ends instead of their
  middles (so always the most extreme item of each class) changed it for 24% with k=20 (|v| 2.8),
  the middles for 4% (|v| 1.8); with k=100 both 2% (``benchmarks/infogan.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from ..errors import GenlabError
from .attributes import MEASURES

_ITEMS = re.compile(r"^(train|val|test|all):([0-9]+(?:,[0-9]+)*)$")
_LABEL = re.compile(r"^label=(-?[0-9]+)$")
_MEASURE = re.compile(r"^([a-z_]+)([+-])$")


def resolve(ref: str, data, shape: tuple[int, ...], *, split: str = "test", k: int = 20) -> Tensor:
    """One reference -> images (M, *shape) in [0, 1]. ``data``: the run's data set (may be needed)."""
    if m := _ITEMS.match(ref):
        index = data.indices(m.group(1))
        wanted = torch.tensor([int(i) for i in m.group(2).split(",")])
        if wanted.max() >= len(index):
            raise GenlabError(f"{ref}: the {m.group(1)} split has {len(index)} items (0..{len(index) - 1})")
        return data.images(index[wanted])
    if m := _LABEL.match(ref):
        if not data.labelled:
            raise GenlabError(f"{ref}: data set {data.name} has no labels")
        index = data.indices(split)
        index = index[data.y[index] == int(m.group(1))][:k]
        if not len(index):
            raise GenlabError(f"{ref}: no item of class {m.group(1)} in the {split} split")
        return data.images(index)
    if (m := _MEASURE.match(ref)) and m.group(1) in MEASURES:
        return extremes(data, MEASURES[m.group(1)], split=split, k=k, highest=m.group(2) == "+")
    path = Path(ref).expanduser()
    if not path.exists():
        raise GenlabError(f"{ref!r} is neither an image file nor a reference (test:12, label=3, "
                          f"{'/'.join(f'{n}+' for n in MEASURES)})")
    from ..data.user_images import load_user_images

    return load_user_images([path], shape)  # (1, C, H, W)


def resolve_all(refs: list[str], data, shape: tuple[int, ...], **kw) -> Tensor:
    """Several references -> their images stacked (M, *shape)."""
    return torch.cat([resolve(r, data, shape, **kw) for r in refs])


def extremes(data, measure, *, split: str, k: int, highest: bool, share: float = 0.5) -> Tensor:
    """k items (M, *shape) from the ``share`` of a split with the highest (lowest) measure, one from
    the middle of each of k equal bins of its ranks (rank 0 = the most extreme; ``share`` -> 0 gives
    the k most extreme items); when labelled, k/C from each class's own top (bottom) share."""
    index = data.indices(split)
    values = torch.cat([measure(data.images(i)) for i in index.split(1000)])  # (N,)
    if not data.labelled:
        return data.images(index[_spread(values.argsort(descending=highest), k, share)])
    y = data.y[index]
    per = max(1, k // int(data.num_classes))
    picked = []
    for c in range(int(data.num_classes)):
        members = (y == c).nonzero().squeeze(1)  # (N_c,) positions in the split
        picked.append(members[_spread(values[members].argsort(descending=highest), per, share)])
    return data.images(index[torch.cat(picked)])


def _spread(order: Tensor, k: int, share: float) -> Tensor:
    """k entries of ``order`` (most extreme first): the middles of k equal bins of its first ``share``
    (at least its first k)."""
    n = min(len(order), max(k, round(share * len(order))))
    m = min(k, n)
    return order[((torch.arange(m) + 0.5) * n / m).long()]  # the midpoints of m equal bins of ranks
