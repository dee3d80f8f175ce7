"""Attribute vectors and latent arithmetic ("looking into the z-vector").

An attribute vector is the mean code of examples that have an attribute minus the mean code of
examples that lack it (Larsen et al. 2016; White 2016); adding it with a strength moves new codes
towards the attribute. Two attributes of handwriting can be measured on the pixels, so the effect
is checked by a number, not only by eye:

* ``thickness``: ink mass, the mean intensity of the image (more ink = thicker strokes);
* ``slant``: the shear of the ink's second moments, cov(col, row) / var(row): positive when the
  top of the digit leans right.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def thickness(x: Tensor) -> Tensor:
    """Images (N, C, H, W) in [0, 1] -> (N,) mean intensity (ink mass per pixel)."""
    return x.flatten(1).mean(1)


def slant(x: Tensor) -> Tensor:
    """Images (N, C, H, W) -> (N,) shear of the ink: cov(col, row) / var(row), with rows counted
    upwards, so a digit whose top leans right has a positive slant."""
    ink = x.mean(1)  # (N, H, W)
    h, w = ink.shape[1:]
    rows = torch.arange(h, dtype=ink.dtype).flip(0).view(1, h, 1)  # upwards
    cols = torch.arange(w, dtype=ink.dtype).view(1, 1, w)
    mass = ink.sum((1, 2)).clamp_min(1e-8)  # (N,)
    r_mean = (ink * rows).sum((1, 2)) / mass
    c_mean = (ink * cols).sum((1, 2)) / mass
    dr, dc = rows - r_mean.view(-1, 1, 1), cols - c_mean.view(-1, 1, 1)
    cov = (ink * dr * dc).sum((1, 2)) / mass
    var = (ink * dr * dr).sum((1, 2)) / mass
    return cov / var.clamp_min(1e-8)


MEASURES: dict[str, Callable[[Tensor], Tensor]] = {"thickness": thickness, "slant": slant}


def attribute_vector(z_with: Tensor, z_without: Tensor) -> Tensor:
    """Mean code of the examples with the attribute minus that of those without: (A, D), (B, D) -> (D,)."""
    return z_with.mean(0) - z_without.mean(0)


def apply_attribute(z: Tensor, vector: Tensor, strengths: Tensor) -> Tensor:
    """Codes (N, D) moved by each strength (S,) times the vector (D,) -> (N, S, D)."""
    return z.unsqueeze(1) + strengths.to(z).view(1, -1, 1) * vector.to(z).view(1, 1, -1)


def arithmetic(z_a: Tensor, z_b: Tensor, z_c: Tensor) -> Tensor:
    """z_a − z_b + z_c, each (N, D) or (D,) (a mean of several examples is one row)."""
    return z_a - z_b + z_c
