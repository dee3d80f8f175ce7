"""Differentiable augmentation for the discriminator (DiffAugment, Zhao et al. 2020).

D sees every image, real or fake, through the same random transform, and G's gradient flows back
through it; with little data (mnist5k has 4,000 training images) this keeps D from memorising the
training set. It also stops an InfoGAN from hiding its codes in pixel-exact patterns that Q (which
shares D's trunk) reads but no one sees: a code must survive a shift of a few pixels.

``label_preserving_view`` (a small rotation, slant, scaling and shift, then a change of pen width) is
the view a consistency term compares against the original: q(y|x) of the GMVAE and M2 should not
change when the digit is turned a little.
"""

from __future__ import annotations

import math

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


def random_affine(x: Tensor, *, degrees: float = 15.0, scale: float = 0.1, shift: float = 0.1, shear: float = 0.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """Each image (N, C, H, W) rotated by up to ``degrees``, scaled by 1 +- ``scale``, sheared
    horizontally by up to ``shear`` (a slant) and shifted by up to ``shift`` of its size, its own draw
    each, bilinear, zeros outside: changes of pose and size a class label does not care about (the
    digit stays the digit), for consistency terms."""
    n = x.shape[0]

    def uniform(half: float) -> Tensor:  # (N,) uniform in [-half, half]
        return (torch.rand(n, generator=generator) * 2 - 1).mul(half).to(x.device, x.dtype)

    angle = uniform(math.radians(degrees))
    s = 1 + uniform(scale)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s  # output -> input map: inverse scale
    k = uniform(shear)  # x_in += k * y_out: rows slide sideways in proportion to their height
    theta = torch.stack([torch.stack([cos + k * sin, -sin + k * cos, 2 * uniform(shift)], 1),
                         torch.stack([sin, cos, 2 * uniform(shift)], 1)], 1)  # (N, 2, 3), [-1, 1] units
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_stroke(x: Tensor, *, thicker: float = 1.0, thinner: float = 0.5,
                  generator: torch.Generator | None = None) -> Tensor:
    """Each image (N, C, H, W) moved part of the way towards its 3x3 dilation (strokes thicker, by up to
    ``thicker``) or its 3x3 erosion (thinner, by up to ``thinner``), its own draw each: pen width is
    the style a GMVAE otherwise splits a class by."""
    n = x.shape[0]
    t = (torch.rand(n, generator=generator) * (thicker + thinner) - thinner).to(x.device, x.dtype)
    t = t.view(n, 1, 1, 1)  # > 0: towards the dilation, < 0: towards the erosion
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return x + t.clamp(min=0) * (dilated - x) + (-t).clamp(min=0) * (eroded - x)


def label_preserving_view(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A random view of each image that keeps what it shows: a small affine move with a slant, then a
    pen width."""
    return random_stroke(random_affine(x, degrees=25.0, scale=0.2, shear=0.4, generator=generator), generator=generator)


def augment(kind: str, x: Tensor) -> Tensor:
    """Apply the named augmentation to a batch of images (points and "none" pass through)."""
    if kind == "none" or x.dim() != 4:
        return x
    if kind == "translation":
        return translate(x)
    raise ValueError(f"unknown augmentation {kind!r}; choose from {', '.join(AUGMENTATIONS)}")
