"""Traversals: change one latent dimension (or code) at a time and decode, to see what it means.

``sweep`` sets one dimension of given codes to each of a list of values; ``dimension_grid`` does
that for several dimensions around one base code (a row per dimension); ``code_grid`` is the
InfoGAN picture of Chen et al. 2016 (Fig. 2): a row per category, one continuous code swept
across the columns, the noise and the other codes held fixed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GenlabError


def sweep(z: Tensor, dim: int, values: Tensor) -> Tensor:
    """Codes z (N, D) with dimension ``dim`` set to each value (V,) -> (N, V, D)."""
    if not 0 <= dim < z.shape[1]:
        raise GenlabError(f"latent dimension {dim} does not exist: the latent has {z.shape[1]}")
    out = z.unsqueeze(1).repeat(1, len(values), 1)  # (N, V, D)
    out[:, :, dim] = values.to(z).view(1, -1)
    return out


@torch.no_grad()
def decode_grid(model, z: Tensor) -> Tensor:
    """Codes (R, C, D) -> images (R, C, *shape) through the model's ``decode``."""
    rows, cols = z.shape[:2]
    x = model.decode(z.flatten(0, 1).to(model.device))
    return x.view(rows, cols, *x.shape[1:]).cpu()


def dimension_grid(model, base: Tensor, dims: list[int], values: Tensor) -> Tensor:
    """One base code (D,): a row per dimension in ``dims``, that dimension swept -> (len(dims), V, *shape)."""
    z = torch.stack([sweep(base.view(1, -1), d, values)[0] for d in dims])  # (R, V, D)
    return decode_grid(model, z)


def code_grid(model, code: int, values: Tensor, *, seed: int = 0) -> Tensor:
    """InfoGAN: rows = values of the first categorical code, columns = continuous code ``code`` swept
    over ``values``; one noise vector for the whole grid, the other continuous codes at 0.
    -> (K, V, *shape)."""
    layout = model.code_layout
    if not 0 <= code < layout.cont_codes:
        raise GenlabError(f"continuous code {code} does not exist: the model has {layout.cont_codes} "
                          f"(numbered from 0)")
    k = max(layout.categories, 1) if layout.cat_codes else 1
    g = torch.Generator().manual_seed(seed)
    noise, cat, _ = layout.split(model.prior_sample(1, generator=g).cpu())
    rows = []
    for category in range(k):
        c = cat.clone()
        if layout.cat_codes:
            c[:, 0] = category
        base = layout.compose(noise, c, torch.zeros(1, layout.cont_codes))  # (1, D)
        rows.append(sweep(base, layout.cont_start + code, values)[0])  # (V, D)
    return decode_grid(model, torch.stack(rows))
