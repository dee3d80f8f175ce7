"""Linear and spherical interpolation between latent codes.

Slerp (Shoemake 1985; White 2016 for generative models) follows the great circle between two
codes, keeping their norm where a Gaussian prior puts its mass; lerp cuts through the middle,
where codes of high-dimensional Gaussians are rarely found.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """a, b (N, D); t (T,) -> (N, T, D)."""
    t = t.view(1, -1, 1).to(a)
    return a.unsqueeze(1) * (1 - t) + b.unsqueeze(1) * t


def slerp(a: Tensor, b: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation of a, b (N, D) at t (T,) -> (N, T, D); falls back to lerp when parallel."""
    t = t.view(1, -1, 1).to(a)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1, eps=eps).clamp(-1 + eps, 1 - eps)
    omega = torch.arccos(cos).view(-1, 1, 1)  # (N, 1, 1)
    so = torch.sin(omega)
    out = (torch.sin((1 - t) * omega) * a.unsqueeze(1) + torch.sin(t * omega) * b.unsqueeze(1)) / so
    parallel = (so.abs() < 1e-4).expand_as(out)
    return torch.where(parallel, lerp(a, b, t.view(-1)), out)


def interpolate(a: Tensor, b: Tensor, steps: int = 10, *, spherical: bool = False) -> Tensor:
    """Codes from a to b inclusive, (N, steps, D)."""
    t = torch.linspace(0, 1, steps)
    return (slerp if spherical else lerp)(a, b, t)
