"""What a GAN's critic sees, and where it pushes the generator: the "why GANs fail" pictures.

For any model with a critic ``model.critic(x[, y]) -> (N,)`` and a generator loss
``model.generator_loss(d_fake) -> ()`` (the GAN family), on 2-D points:

* D's field: the critic's output over the plane (P(real) = sigmoid(logit) when
  ``model.critic_is_logit``, the raw critic value otherwise), with the real and the generated points;
* G's gradient field: at each generated point x, -d loss_G / d x, the direction (and size) in which
  the generator's loss moves that sample (Goodfellow et al. 2014, Fig. 1; Arjovsky & Bottou 2017:
  with a confident D, the minimax loss's arrows vanish and the non-saturating one's do not).

``generator_gradients`` is also what ``benchmarks/gan_gradients.py`` measures, on G's weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data import DataSet
from ..models.capabilities import Adversarial, ClassConditional


def has_critic(model) -> bool:
    """The model exposes a critic and the generator's loss on its outputs (the GAN family)."""
    return isinstance(model, Adversarial) and isinstance(model.critic, nn.Module)


def dfield_applies(model, data: DataSet) -> bool:
    """D-field pictures need a critic and data that are points in the plane."""
    return has_critic(model) and data.kind == "points" and tuple(data.shape) == (2,)


def generator_field(critic: Callable[[Tensor], Tensor], generator_loss: Callable[[Tensor], Tensor],
                    x: Tensor) -> tuple[Tensor, Tensor]:
    """D's values (N,) at points x (N, D) and the push on each point, -d loss_G / d x_i, (N, D).

    ``generator_loss`` is a batch mean, so it is scaled by N: each arrow is the gradient of that
    point's own loss term, whatever the number of points.
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        d = critic(x)  # (N,)
        (grad,) = torch.autograd.grad(generator_loss(d) * len(x), x)
    return d.detach(), -grad  # (N,), (N, D)


def critic_for(model, label: int | None = None) -> tuple[Callable[[Tensor], Tensor], Tensor | None]:
    """x -> D(x) for an unconditional model, x -> D(x, label) for a conditional one (class 0 by
    default); and the (1,) label tensor (None when unconditional)."""
    if isinstance(model, ClassConditional):
        y = torch.tensor([label or 0], device=model.device)
        return (lambda v: model.critic(v, y.expand(len(v)))), y
    return (lambda v: model.critic(v)), None


def _extent(real: Tensor, fake: Tensor, margin: float = 0.25) -> tuple[float, float, float, float]:
    """A square box around the real points, widened to the fakes but at most 3x the real span."""
    lo, hi = real.min(0).values, real.max(0).values
    span = float((hi - lo).max())
    centre = (lo + hi) / 2
    half = span / 2 * (1 + margin)
    far = float((fake - centre).abs().max()) if len(fake) else 0.0
    half = max(half, min(far * (1 + margin / 2), 3 * half))
    return float(centre[0]) - half, float(centre[0]) + half, float(centre[1]) - half, float(centre[1]) + half


def dfield_picture(model, data: DataSet, path: str | Path, *, n: int = 512, arrows: int = 160,
                   grid: int = 120, seed: int = 0, real: Tensor | None = None, label: int | None = None,
                   title: str = "") -> Path:
    """D over the plane, real and generated points and G's gradient arrows at ``arrows`` of the
    ``n`` generated points, saved as a PNG. Needs ``dfield_applies(model, data)``."""
    from .grids import save_dfield

    was_training = model.training
    model.eval()
    critic, y = critic_for(model, label)
    try:
        with torch.random.fork_rng(devices=[]):
            g = torch.Generator().manual_seed(seed)
            draw = model.generator_sample  # G itself, not its EMA, when kept
            fake = draw(n, y=None if y is None else y.expand(n), generator=g).detach()  # (n, 2)
        if real is None:
            real = data.tensors("train", limit=2000, seed=seed)[0]
        real = real.to(model.device)
        x0, x1, y0, y1 = _extent(real.cpu(), fake.cpu())
        xs, ys = torch.linspace(x0, x1, grid), torch.linspace(y0, y1, grid)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        plane = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).to(model.device)  # (grid², 2)
        with torch.no_grad():
            values = torch.cat([critic(c) for c in plane.split(4096)]).reshape(grid, grid)  # (grid, grid)
        _, push = generator_field(critic, model.generator_loss, fake[:arrows])  # (arrows, 2)
    finally:
        model.train(was_training)
    logit = bool(model.critic_is_logit)
    field = torch.sigmoid(values) if logit else values
    loss = model.objective
    title = " · ".join(t for t in (title, f"{loss} loss" if loss else "", "" if y is None else f"class {int(y)}") if t)
    return save_dfield(field.cpu(), (x0, x1, y0, y1), real.cpu(), fake.cpu(), fake[:arrows].cpu(), push.cpu(),
                       path, probability=logit, title=title)
