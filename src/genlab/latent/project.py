"""Projection (GAN inversion): find the z whose G(z) best matches a real image.

A generator has no encoder, so z is found by optimisation (Zhu et al. 2016; Creswell & Bharath
2018): from several random starts per image, Adam on the pixel error plus, when a feature network
is given, the error of its features (a perceptual term that cares for strokes more than for
exact pixels), with a small pull towards the prior's shell. The best start per image wins.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..evaluation.metrics import psnr


def project(model, x: Tensor, *, starts: int = 8, steps: int = 300, lr: float = 0.05,
            feature_net=None, feature_weight: float = 0.01, prior_weight: float = 1e-3,
            seed: int = 0) -> dict[str, Tensor]:
    """Images x (N, *shape) -> {"z" (N, D), "x_hat" (N, *shape), "loss" (N,), "start_loss" (N,),
    "mse" (N,), "psnr" (N,)}: the best of ``starts`` runs per image; ``start_loss`` is the best
    start's loss before any step. ``feature_net``: a module mapping images to features (frozen)."""
    device = model.device
    x = x.to(device)
    n, s = len(x), starts
    g = torch.Generator().manual_seed(seed)
    z = model.prior_sample(n * s, generator=g).detach().clone().requires_grad_(True)  # (N·S, D)
    target = x.repeat_interleave(s, 0)  # (N·S, *shape)
    target_f = feature_net(target).detach() if feature_net is not None else None
    opt = torch.optim.Adam([z], lr=lr)

    def losses(zz: Tensor) -> Tensor:
        out = model.decode(zz)
        loss = (out - target).pow(2).flatten(1).mean(1)  # (N·S,)
        if feature_net is not None:
            loss = loss + feature_weight * (feature_net(out) - target_f).pow(2).mean(1)
        # keep |z|² near its prior value D (a Gaussian's shell), not zero
        return loss + prior_weight * (zz.pow(2).mean(1) - 1).pow(2)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            start = losses(z).view(n, s).min(1).values
        for _ in range(steps):
            loss = losses(z)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            final = losses(z).view(n, s)
            best = final.argmin(1)  # (N,)
            z_best = z.detach().view(n, s, -1)[torch.arange(n), best]  # (N, D)
            x_hat = model.decode(z_best)
            mse = (x_hat - x).pow(2).flatten(1).mean(1)
    finally:
        model.train(was_training)
    return {"z": z_best, "x_hat": x_hat, "loss": final.min(1).values, "start_loss": start, "mse": mse,
            "psnr": torch.tensor([psnr(float(m)) for m in mse])}
