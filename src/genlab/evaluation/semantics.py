"""Metrics of a latent forced to mean something, and of sharp samples.

* ``view_iou``, ``scale_iou``, ``move_iou``: novel-view synthesis (Kulkarni et al. 2015; Park et al.
  2017). Held-out images are edited by the model's ``transform`` (rotated by 15-90 degrees; scaled
  to a random valid scale; moved to a random valid position) and compared, binarised at 0.5, with
  the exact render of the edited factors (``DataSet.render``): the median intersection over union.
* ``unit_corr``, ``unit_leak``: for each factor bound to a named unit (``model.unit_names``), the
  |correlation| of the factor with its own unit (the smallest over factors is ``unit_corr``) and
  the largest |correlation| with any other unit (the largest over factors is ``unit_leak``). A
  circular factor is compared on the harmonic each item's image determines: an item that looks the
  same after a turn by P_i (shapes: a square's quarter turn, an ellipse's half, a heart's whole turn;
  ``meta["item_periods"]``, else the factor's common period) is compared as the angle
  phi = 2 pi theta / P_i. Against its own circular unit: the mean resultant length of phi - psi
  (psi: the unit read as an angle on the same harmonic), as the mean of cos(phi - psi - offset) for
  the best single offset and direction (1: the unit follows the factor up to a constant turn); with
  one period for all items this is the mean resultant length, and for a uniform angle it equals the
  correlation of cos phi with cos psi. Against other units:
  the larger |correlation| of cos phi and sin phi. Free units (past the named ones) count only when
  active (Burda et al. 2016: the variance of their posterior mean over the data above 0.01): an
  inactive unit's mean moves by a few hundredths against a posterior std near 1, carries no usable
  information, and its correlation is noise (measured up to 0.8 with sd 0.03); ``other_all`` reports
  the largest over every unit. (An earlier version compared every item on the
  common quarter-turn harmonic: it scored a heart read 90 degrees off as perfect and multiplied a
  heart's or an ellipse's angle errors by 4 or 2; ``own_common`` still reports that figure.)
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
from ..models.capabilities import NamedUnits

EVAL_N = 1000  # held-out items per edit metric (at most the split)
ACTIVE = 0.01  # a free unit is active when the variance of its posterior mean exceeds this (Burda et al.)
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
    period = model.unit_period(name) if isinstance(model, NamedUnits) else None
    if period:
        ang = 2 * math.pi * z[:, i] / period
        return [torch.cos(ang), torch.sin(ang)]
    return [z[:, i]]


def _aligned_cos(theta: Tensor, theta_hat: Tensor, periods: Tensor) -> Tensor:
    """cos(2 pi (theta_i - s theta_hat_i - c) / P_i) (N,) for the one offset c and direction s = +-1 that
    maximise its mean: each item's angle error on the harmonic its image determines (period P_i), all
    items sharing the one offset (a unit may be turned by a constant and count either way). Its mean is
    the mean resultant length of the errors when all items share one period. (N,) each, factor units."""
    c = torch.linspace(0, 2 * math.pi, 721, dtype=theta.dtype)[:-1].unsqueeze(1)  # (720, 1) offsets
    best = None
    for s in (1, -1):
        cos = torch.cos(2 * math.pi * (theta - s * theta_hat - c) / periods)  # (720, N)
        i = int(cos.mean(1).argmax())
        if best is None or cos[i].mean() > best.mean():
            best = cos[i]
    return best


def _circular(model, data: DataSet, name: str, v: Tensor, z: Tensor, f: Tensor) -> tuple[float, dict, list[Tensor]]:
    """(own on each item's harmonic, {"own_common": on the common period, "own_by_symmetry": {order: own on
    the items that look the same after 1/order of a turn}}, targets [cos phi, sin phi]) of a circular factor."""
    common = data.meta["factor_periods"][name]
    item = data.meta.get("item_periods")
    periods = item(f)[:, _col(data, name)] if item is not None else torch.full_like(v, common)  # (N,)
    phi = 2 * math.pi * v / periods
    target = [torch.cos(phi), torch.sin(phi)]
    unit_period = model.unit_period(name) if isinstance(model, NamedUnits) else None
    if not unit_period:  # a linear unit against an angle: the better of the two correlations
        rho = max(_corr(t, z[:, model.unit_names.index(name)]) for t in target)
        return rho, {"own_common": rho}, target
    theta_hat = z[:, model.unit_names.index(name)] * common / unit_period  # the unit in factor units
    cos = _aligned_cos(v, theta_hat, periods)  # (N,)
    own_common = float(_aligned_cos(v, theta_hat, torch.full_like(v, common)).mean())
    # the same errors by kind of symmetry, keyed by how often an item looks the same over the factor's range
    # (shapes: 4 squares, 2 ellipses, 1 hearts)
    lo, hi = data.meta.get("factor_ranges", {}).get(name, (0.0, common))
    by_order = {str(round((hi - lo) / float(p))): float(cos[periods == p].mean()) for p in periods.unique()}
    return float(cos.mean()), {"own_common": own_common, "own_by_symmetry": by_order}, target


def unit_correlations(model, data: DataSet, *, split: str = "test", n: int | None = None,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """{factor: {"own": |rho| with its unit, "other": largest |rho| with another unit (named or an active
    free unit), "other_unit": which unit that is, "other_all": the largest counting inactive free units
    too}} (see the module doc); a circular factor also gets "own_common" and "own_by_symmetry"."""
    x, f = _held_out(data, split, n, seed)
    with torch.no_grad():
        z = torch.cat([model.encode(xb.to(_device(model))).cpu()
                       for xb in x.split(500)]).double()  # (N, D)
    periods = data.meta.get("factor_periods", {})
    names = [u for u in model.unit_names if u in data.factor_names]
    inactive = {f"z{j}" for j in range(len(model.unit_names), z.shape[1]) if z[:, j].var() <= ACTIVE}
    out = {}
    for name in names:
        v = f[:, _col(data, name)]
        i = model.unit_names.index(name)
        extra = {}
        if periods.get(name, 0) > 0:
            rho, extra, target = _circular(model, data, name, v, z, f)
        else:
            target = [v]
            rho = max(_corr(v, r) for r in _readings(model, name, z))
        others = {(model.unit_names[j] if j < len(model.unit_names) else f"z{j}"):
                  (_readings(model, model.unit_names[j], z) if j < len(model.unit_names) else [z[:, j]])
                  for j in range(z.shape[1]) if j != i}
        leak = {u: max(_corr(t, r) for t in target for r in rs) for u, rs in others.items()}
        counted = {u: r for u, r in leak.items() if u not in inactive}
        worst = max(counted, key=counted.get, default=None)
        out[name] = {"own": float(rho), "other": float(counted.get(worst, 0.0)), "other_unit": worst,
                     "other_all": float(max(leak.values(), default=0.0)), **extra}
    return out


def gradient_magnitude(x: Tensor) -> float:
    """Mean |grad| of images (N, C, H, W) by forward differences: sqrt(dx^2 + dy^2) per pixel."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return float((dx.double() ** 2 + dy.double() ** 2).sqrt().mean())


def sharpness_ratio(samples: Tensor, real: Tensor) -> float:
    return gradient_magnitude(samples.clamp(0, 1)) / max(gradient_magnitude(real), 1e-12)
