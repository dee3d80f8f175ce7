"""Mode coverage on toy 2-D mixtures with known centres (ring8, grid25, spiral).

A sample is high quality (HQ) when it lies within 3 sigma of a mode centre (Srivastava et al. 2017,
VEEGAN; Lin et al. 2018, PacGAN). Those papers count a mode as covered when it holds at least one
HQ sample; we follow our issue's stricter rule: a mode counts when at least 1% of all samples lie
within 3 sigma of its centre, so a handful of stray samples cannot cover a mode. Both metrics use
``data.meta["centres"]`` (K, 2) and ``data.meta["sigma"]`` and apply only to data that has them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.base import DataSet
from ..registry import METRICS
from .evaluate import Metric, can_sample

MODE_SHARE = 0.01  # a mode counts when it holds at least this share of the samples
RADIUS = 3.0  # in units of sigma


def has_modes(data: DataSet) -> bool:
    return data.kind == "points" and "centres" in data.meta and "sigma" in data.meta


def mode_counts(samples: Tensor, centres: Tensor, sigma: float, *, radius: float = RADIUS) -> tuple[Tensor, Tensor]:
    """HQ samples per mode (K,) and the HQ mask (N,): each sample goes to its nearest centre and is
    HQ when that centre is within ``radius`` sigma."""
    x = samples.detach().double().cpu().flatten(1)  # (N, D)
    c = torch.as_tensor(centres).double().cpu()  # (K, D)
    dist, nearest = torch.cdist(x, c).min(dim=1)  # (N,), (N,)
    hq = dist <= radius * float(sigma)
    return torch.bincount(nearest[hq], minlength=len(c)), hq


def modes_covered(samples: Tensor, centres: Tensor, sigma: float, *, share: float = MODE_SHARE) -> int:
    """Modes holding at least ``share`` of all samples within 3 sigma of their centre."""
    counts, _ = mode_counts(samples, centres, sigma)
    return int((counts >= share * len(samples)).sum())


def high_quality_share(samples: Tensor, centres: Tensor, sigma: float) -> float:
    """Share of samples within 3 sigma of some mode centre."""
    _, hq = mode_counts(samples, centres, sigma)
    return float(hq.double().mean()) if len(hq) else 0.0


def _modes(samples: Tensor, data: DataSet) -> float:
    return float(modes_covered(samples, data.meta["centres"], data.meta["sigma"]))


def _hq(samples: Tensor, data: DataSet) -> float:
    return high_quality_share(samples, data.meta["centres"], data.meta["sigma"])


for _m in (
    Metric("modes", "modes holding >= 1% of the samples within 3 sigma (our issue's rule; VEEGAN and "
           "PacGAN count >= 1 sample), toy 2-D sets", True, "points",
           can_sample, _modes, needs_data=has_modes),
    Metric("hq", "share of samples within 3 sigma of a mode centre (high quality), toy 2-D sets",
           True, "points", can_sample, _hq, needs_data=has_modes),
):
    METRICS.register(_m.name, help=_m.help)(_m)
