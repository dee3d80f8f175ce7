"""The latent tools on a trained model: codes of images (encoded, or projected for a generator) and
attribute vectors applied to images with their effect measured."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from ..errors import GenlabError
from ..models.capabilities import Decodes, Encodes
from .attributes import MEASURES, apply_attribute, attribute_vector
from .interpolate import interpolate as interpolate_codes
from .project import project
from .traverse import decode_grid

log = logging.getLogger("genlab")


def codes_of(model: Decodes, x: Tensor, *, feature_net=None, starts: int = 8, steps: int = 300) -> Tensor:
    """Latent codes of images (N, *shape): the encoder's means, or projection (``project``) for a model
    that only decodes; ``feature_net`` guides the projection."""
    if isinstance(model, Encodes):
        with torch.no_grad():
            return model.encode(x.to(model.device))
    log.info("projecting %d image(s) into z (%d starts x %d steps): this model has no encoder", len(x), starts, steps)
    return project(model, x, starts=starts, steps=steps, feature_net=feature_net)["z"]


@torch.no_grad()
def interpolate(model: Decodes, a: Tensor, b: Tensor, *, steps: int = 8, slerp: bool = False,
                feature_net=None) -> Tensor:
    """Images along the latent path between images ``a`` and ``b`` (each (*shape), or (N, *shape) pairs):
    their codes (encoded, or projected for a generator) interpolated linearly or spherically (``slerp``)
    and decoded -> (steps, *shape), or (N, steps, *shape) for N pairs; the ends reconstruct a and b."""
    single = a.dim() == len(model.data_info.shape)
    a, b = (a.unsqueeze(0), b.unsqueeze(0)) if single else (a, b)
    with torch.enable_grad():  # projection optimises codes
        za, zb = codes_of(model, a, feature_net=feature_net), codes_of(model, b, feature_net=feature_net)
    path = interpolate_codes(za, zb, steps, spherical=slerp)  # (N, S, D)
    x = decode_grid(model, path)  # (N, S, *shape)
    return x[0] if single else x


def effect_report(grid: Tensor, features=None) -> dict:
    """For images (N, S, *shape) decoded at increasing strengths: per measure, the mean at the
    weakest and strongest strength and the share of rows whose value rose; and, with a classifier
    (``features``, a ``FeatureExtractor``), the share whose predicted class at the strongest strength
    equals that at the middle one."""
    first, mid, last = grid[:, 0], grid[:, grid.shape[1] // 2], grid[:, -1]
    report = {name: {"weakest": float(m(first).mean()), "strongest": float(m(last).mean()),
                     "rose": float((m(last) > m(mid)).double().mean())} for name, m in MEASURES.items()}
    if features is not None and features.has_classifier:
        same = features.probs(last).argmax(1) == features.probs(mid).argmax(1)
        report["class_kept"] = float(same.double().mean())
    return report


def attribute_edit(model: Decodes, x: Tensor, *, vector: Tensor | None = None, with_x: Tensor | None = None,
                   without_x: Tensor | None = None, strength: float = 1.5, steps: int = 7, features=None,
                   starts: int = 8, project_steps: int = 300) -> tuple[Tensor, Tensor, dict]:
    """Images x (N, *shape) moved along an attribute vector (given, or mean code of ``with_x`` minus that of
    ``without_x``) at ``steps`` strengths from -strength to strength: (vector (D,), the grid (N, 1 + S, *shape)
    with each image first, the measured effect ``effect_report``)."""
    kw = {"feature_net": None if features is None else features.net, "starts": starts, "steps": project_steps}
    if vector is None:
        if with_x is None or without_x is None:
            raise GenlabError("give --with REF... and --without REF... (or --vector FILE.npz)")
        vector = attribute_vector(codes_of(model, with_x, **kw), codes_of(model, without_x, **kw)).cpu()
    if vector.numel() != model.latent_size:
        raise GenlabError(f"the vector has {vector.numel()} dimensions, the model's latent {model.latent_size}")
    z = codes_of(model, x, **kw).cpu()
    grid = decode_grid(model, apply_attribute(z, vector, torch.linspace(-strength, strength, steps)))  # (N, S, ...)
    return vector, torch.cat([x.unsqueeze(1), grid], 1), effect_report(grid, features)

