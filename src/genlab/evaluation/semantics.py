"""Metrics of a latent forced to mean something, and of sharp samples.

* ``view_iou``, ``scale_iou``, ``move_iou``: novel-view synthesis (Kulkarni et al. 2015; Park et al.
  2017). Held-out images are edited by the model's ``transform`` (rotated by 15-90 degrees; scaled
  to a random valid scale; moved to a random valid position) and compared, binarised at 0.5, with
  the exact render of the edited factors (``DataSet.render``): the median intersection over union.
* ``unit_corr``, ``unit_leak``: for each factor bound to a named unit (``model.unit_names``), the
  |correlation| of the factor with its own unit (the smallest over factors is ``unit_corr``) and
  the largest |correlation| with any other unit (the largest over factors is ``unit_leak``). A
  circular factor that images fix modulo a period P (rotation: a quarter turn) is compared as the
  angle 2 pi theta / P; against its own circular unit by the mean resultant length of the angle
  difference (1: the unit follows the factor up to a constant offset), against other units by the
  larger |correlation| of its cosine and sine.
* ``sharpness``: mean gradient magnitude of samples over that of held-out images (1: as sharp).

The edit and correlation metrics need a model with ``transform`` / ``unit_names`` (capabilities,
any model, e.g. a plain VAE wrapped with regression-found directions) and a data set that renders
its factors exactly (``shapes``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..data.base import DataSet

EVAL_N = 1000  # held-out items per edit metric (at most the split)
ANGLES = (15.0, 90.0)  # degrees: the range of rotations view_iou asks for


def renders(data: DataSet) -> bool:
    return data.render is not None and data.factors is not None and bool(data.factor_names)


def _held_out(data: DataSet, split: str, n: int | None, seed: int) -> tuple[Tensor, Tensor]:
    idx = data.indices(split)
    n = min(n or EVAL_N, len(idx))
    g = torch.Generator().manual_seed(seed)
    idx = idx[torch.randperm(len(idx), generator=g)[:n]].sort().values
    return data.images(idx), data.factors[idx].double()  # (N, *shape), (N, F)


def iou(a: Tensor, b: Tensor, threshold: float = 0.5) -> Tensor:
    """Intersection over union of two image batches (N, C, H, W) binarised at ``threshold``, (N,).

    Two empty images count as a perfect match (1)."""
    a, b = (t.float().mean(1) > threshold for t in (a, b))  # (N, H, W) bool
    inter, union = (a & b).flatten(1).sum(1), (a | b).flatten(1).sum(1)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter, dtype=torch.float))


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _col(data: DataSet, name: str) -> int:
    return data.factor_names.index(name)


def edit_ious(model, data: DataSet, edit: str, *, split: str = "test", n: int | None = None,
              seed: int = 0, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """IoU (N,) of each edited held-out image with its exact render, and the edit sizes (N,).

    ``edit``: "rotate" (by 15-90 degrees, counter-clockwise; sizes in degrees), "scale" (to a scale
    drawn from the factor's range; sizes: the ratio) or "move" (to a position drawn from the range of
    x and y; sizes: the distance in factor units).
    """
    x, f = _held_out(data, split, n, seed)
    g = torch.Generator().manual_seed(seed + 7)
    new, kwargs = f.clone(), {}
    ranges = data.meta.get("factor_ranges", {})
    if edit == "rotate":
        deg = ANGLES[0] + (ANGLES[1] - ANGLES[0]) * torch.rand(len(f), generator=g, dtype=torch.float64)
        new[:, _col(data, "rotation")] += torch.deg2rad(deg)
        kwargs, size = {"rotate": torch.deg2rad(deg)}, deg
    elif edit == "scale":
        lo, hi = ranges.get("scale", (0.5, 1.0))
        c = _col(data, "scale")
        new[:, c] = lo + (hi - lo) * torch.rand(len(f), generator=g, dtype=torch.float64)
        kwargs = {"scale": new[:, c] / f[:, c]}
        size = kwargs["scale"]
    elif edit == "move":
        cx, cy = _col(data, "x"), _col(data, "y")
        new[:, [cx, cy]] = torch.rand(len(f), 2, generator=g, dtype=torch.float64)
        d = new[:, [cx, cy]] - f[:, [cx, cy]]  # (N, 2)
        kwargs, size = {"move": (d[:, 0], d[:, 1])}, d.norm(dim=1)
    else:
        raise ValueError(f"unknown edit {edit!r}")
    truth = data.render(new)  # (N, *shape) exact
    device = _device(model)
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            part = {k: (tuple(t[start:start + batch_size].to(device).float() for t in v) if isinstance(v, tuple)
                        else v[start:start + batch_size].to(device).float()) for k, v in kwargs.items()}
            out.append(model.transform(x[start:start + batch_size].to(device), **part).cpu())
    return iou(torch.cat(out), truth), size


def _corr(a: Tensor, b: Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    den = (a.norm() * b.norm()).item()
    return 0.0 if den == 0 else abs(float((a * b).sum()) / den)


def _readings(model, name: str, z: Tensor) -> list[Tensor]:
    """A unit's reading(s): its value, or (cos, sin) of its angle when it is circular."""
    i = model.unit_names.index(name)
    period = model.unit_period(name) if hasattr(model, "unit_period") else None
    if period:
        ang = 2 * math.pi * z[:, i] / period
        return [torch.cos(ang), torch.sin(ang)]
    return [z[:, i]]


def unit_correlations(model, data: DataSet, *, split: str = "test", n: int | None = None,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """{factor: {"own": |rho| with its unit, "other": largest |rho| with another unit}} (see module doc)."""
    x, f = _held_out(data, split, n, seed)
    with torch.no_grad():
        z = torch.cat([model.encode(xb.to(_device(model))).cpu()
                       for xb in x.split(500)]).double()  # (N, D)
    periods = data.meta.get("factor_periods", {})
    names = [u for u in model.unit_names if u in data.factor_names]
    out = {}
    for name in names:
        v = f[:, _col(data, name)]
        i = model.unit_names.index(name)
        own = _readings(model, name, z)
        if periods.get(name, 0) > 0:
            phi = 2 * math.pi * v / periods[name]
            target = [torch.cos(phi), torch.sin(phi)]
            if len(own) == 2:  # angle difference (either direction), mean resultant length
                psi = torch.atan2(own[1], own[0])
                rho = max(abs(complex(torch.cos(phi - s * psi).mean(), torch.sin(phi - s * psi).mean()))
                          for s in (1, -1))
            else:
                rho = max(_corr(t, own[0]) for t in target)
        else:
            target = [v]
            rho = max(_corr(v, r) for r in own)
        others = [r for j in range(z.shape[1]) if j != i
                  for r in (_readings(model, model.unit_names[j], z) if j < len(model.unit_names) else [z[:, j]])]
        out[name] = {"own": float(rho), "other": max((_corr(t, r) for t in target for r in others), default=0.0)}
    return out


def gradient_magnitude(x: Tensor) -> float:
    """Mean |grad| of images (N, C, H, W) by forward differences: sqrt(dx^2 + dy^2) per pixel."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return float((dx.double() ** 2 + dy.double() ** 2).sqrt().mean())


def sharpness_ratio(samples: Tensor, real: Tensor) -> float:
    return gradient_magnitude(samples.clamp(0, 1)) / max(gradient_magnitude(real), 1e-12)
