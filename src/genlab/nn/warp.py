"""A decoder that draws an object in its own frame and moves it into place (a spatial-transformer decoder).

The pose is not left for the network to learn to render; it is applied as geometry:

    template = g_shape(z_free)                                   (N, C, H, W) logits, the object's own frame
    q        = R(angle)^T (p - centre) / size                    each output pixel p -> a template point q
    output   = template sampled at q (bilinear)                  (N, C, H, W) logits

with ``p`` and ``q`` in the [-1, 1] coordinates of ``F.affine_grid`` (x right, y down). This is the
decoder of spatial-VAE (Bepler et al. 2019) and of the transforming auto-encoder's idea (Hinton et al.
2011): a pose unit that the decoder applies as a warp cannot be ignored or half-used, so editing it
moves the picture exactly as the pose changes. ``size`` and ``centre`` are learned affine read-outs of
the scale and position units (six scalars), the angle is given in radians (counter-clockwise as
displayed, the convention of ``shapes``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ConvDecoder


class PoseWarpDecoder(nn.Module):
    """(angle (N,), pose (N, 3) = scale, x, y units, free (N, F)) -> logits (N, *shape)."""

    def __init__(self, free_features: int, shape: Sequence[int], channels: Sequence[int] = (32, 64, 128)):
        super().__init__()
        self.shape = tuple(shape)
        self.template = ConvDecoder(free_features, shape, channels)
        # size = gain_s * z_scale + bias_s (the output half-width the template spans), centre = gain * z + bias;
        # started at a mid-sized object in the middle, moving a quarter of the image per unit
        self.gain = nn.Parameter(torch.tensor([0.1, 0.25, 0.25]))
        self.bias = nn.Parameter(torch.tensor([0.5, 0.0, 0.0]))

    def affine(self, angle: Tensor, pose: Tensor) -> Tensor:
        """The (N, 2, 3) map from output coordinates to template coordinates."""
        size, cx, cy = (pose * self.gain + self.bias).unbind(1)  # (N,) each
        size = size.abs().clamp(min=1e-2)  # a size through zero would mirror the object
        cos, sin = angle.cos() / size, angle.sin() / size
        row_x = torch.stack([cos, -sin, -(cos * cx - sin * cy)], 1)  # q_x = (cos dx - sin dy) / size
        row_y = torch.stack([sin, cos, -(sin * cx + cos * cy)], 1)  # q_y = (sin dx + cos dy) / size
        return torch.stack([row_x, row_y], 1)

    def warp(self, template: Tensor, angle: Tensor, pose: Tensor) -> Tensor:
        theta = self.affine(angle.to(template.dtype), pose.to(template.dtype))
        grid = F.affine_grid(theta, [len(template), *self.shape], align_corners=False)  # (N, H, W, 2)
        # outside the template: its border (learned background), not zeros (a logit of 0 is grey)
        return F.grid_sample(template, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def forward(self, angle: Tensor, pose: Tensor, free: Tensor) -> Tensor:
        return self.warp(self.template(free), angle, pose)
