"""Analogies (Kingma et al. 2014, Fig. 1): keep the style code z of an input, change its class y.

A class-conditional encoder model separates what its label says (y) from everything else (z):
``encode(x, y)`` gives z, ``decode(z, c)`` draws class c in that style. One row per input: the
input, then its z decoded with every class 0..K-1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.capabilities import ClassConditional, Encodes


def is_conditional_encoder(model) -> bool:
    """Has ``encode(x, y)``, ``decode(z, y)`` and ``num_classes``: the models analogies apply to."""
    return isinstance(model, ClassConditional) and isinstance(model, Encodes)


@torch.no_grad()
def analogy_grid(model, x: Tensor, y: Tensor | None = None) -> Tensor:
    """Inputs x (R, *shape) [with labels y (R,)] -> (R, 1 + K, *shape): each input, then its z with
    every class. Without y the model infers each input's class (``encode`` does) to find z."""
    k = model.num_classes
    x = x.to(model.device)
    z = model.encode(x, None if y is None else y.to(model.device))  # (R, D)
    classes = torch.arange(k, device=x.device).repeat(len(x))  # (R*K,): 0..K-1 per input
    out = model.decode(z.repeat_interleave(k, 0), classes)  # (R*K, *shape)
    return torch.cat([x.unsqueeze(1), out.view(len(x), k, *x.shape[1:])], 1)
