"""Examples named on the command line: image files, items of a data set, or a filter.

A reference is one of
* a path to an image file (read and converted to the model's channels and size);
* ``SPLIT:I`` or ``SPLIT:I,J,...``: items of the run's data set by position in a split
  (``test:12``; splits train, val, test, all);
* ``label=K``: the first ``k`` items of class K in the split;
* ``MEASURE+`` / ``MEASURE-`` (``thickness+``, ``slant-``): the ``k`` items with the highest /
  lowest measured value, balanced over classes when the data is labelled (k/C per class), so an
  attribute vector from them does not also carry a change of class.
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
    from ..data.user import read_image

    c, h, w = shape
    if h != w:
        raise GenlabError(f"image files can be used with square images only; the model makes {h}x{w}")
    return torch.from_numpy(read_image(path, c, h)).unsqueeze(0)


def resolve_all(refs: list[str], data, shape: tuple[int, ...], **kw) -> Tensor:
    """Several references -> their images stacked (M, *shape)."""
    return torch.cat([resolve(r, data, shape, **kw) for r in refs])


def extremes(data, measure, *, split: str, k: int, highest: bool) -> Tensor:
    """The k items of a split with the highest (lowest) measure; k/C per class when labelled."""
    index = data.indices(split)
    values = torch.cat([measure(data.images(i)) for i in index.split(1000)])  # (N,)
    order = values.argsort(descending=highest)
    if not data.labelled:
        return data.images(index[order[:k]])
    y = data.y[index][order]
    per = max(1, k // int(data.num_classes))
    picked = torch.cat([order[y == c][:per] for c in range(int(data.num_classes))])
    return data.images(index[picked])
