"""Differentiable augmentation for the discriminator (DiffAugment, Zhao et al. 2020).

D sees every image, real or fake, through the same random transform, and G's gradient flows back
through it; with little data (mnist5k has 4,000 training images) this keeps D from memorising the
training set. It also stops an InfoGAN from hiding its codes in pixel-exact patterns that Q (which
shares D's trunk) reads but no one sees: a code must survive a shift of a few pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS = ("none", "translation")


def translate(x: Tensor, fraction: float = 0.125) -> Tensor:
    """Each image (N, C, H, W) shifted by its own whole-pixel offset of up to ``fraction`` of its
    size in each direction, zeros shifted in; differentiable with respect to x."""
    n, _, h, w = x.shape
    sh, sw = max(1, int(h * fraction)), max(1, int(w * fraction))
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # (N, H, 1) source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx  # (N, 1, W)
    padded = F.pad(x, (1, 1, 1, 1))  # index 0 and -1 are zeros: out-of-range sources read them
    rows = (rows + 1).clamp(0, h + 1).expand(n, h, w)
    cols = (cols + 1).clamp(0, w + 1).expand(n, h, w)
    flat = (rows * (w + 2) + cols).view(n, 1, h * w).expand(-1, x.shape[1], -1)  # (N, C, H·W)
    return padded.flatten(2).gather(2, flat).view_as(x)


def augment(kind: str, x: Tensor) -> Tensor:
    """Apply the named augmentation to a batch of images (points and "none" pass through)."""
    if kind == "none" or x.dim() != 4:
        return x
    if kind == "translation":
        return translate(x)
    raise ValueError(f"unknown augmentation {kind!r}; choose from {', '.join(AUGMENTATIONS)}")
