"""Is the model copying its training set? Each sample beside its nearest training image.

Distances are in the feature space of the data set's own feature network (standardised features),
where near-duplicates are near. The summary compares samples with held-out real images: if the
samples' nearest-neighbour distances to the training set are much smaller than real held-out
images' are, the model reproduces training images (memorisation); similar distances mean it does not.
"""

from __future__ import annotations

import torch
from torch import Tensor


def nearest(queries: Tensor, reference: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """For each row of queries (N, F): the index of the nearest row of reference (M, F) and the
    Euclidean distance -> (N,), (N,)."""
    idx, dist = [], []
    for q in queries.split(chunk):
        d = torch.cdist(q.float(), reference.float())  # (n, M)
        m = d.min(1)
        idx.append(m.indices)
        dist.append(m.values)
    return torch.cat(idx), torch.cat(dist)


def copy_ratio(sample_dist: Tensor, real_dist: Tensor) -> float:
    """Median nearest-train distance of samples / that of held-out real images (≈1: no copying;
    ≪1: samples sit on training images)."""
    return float(sample_dist.median() / real_dist.median().clamp_min(1e-12))
