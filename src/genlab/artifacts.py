"""The pictures a finished run leaves in its folder, from any model by its capabilities.

Every model: ``samples.png``. Encoder models also: ``recon.png`` (inputs above, reconstructions
below), ``interp.png`` / ``interp_slerp.png`` (between pairs of held-out images), ``latent.png``
(codes of held-out data, coloured by label) and, with a 2-D latent, ``manifold.png``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .data import DataSet
from .latent import interpolate
from .pictures import save_image_grid, save_latent_scatter, save_manifold, save_reconstructions, save_samples


def has_encoder(model) -> bool:
    return hasattr(model, "encode") and hasattr(model, "decode")


def held_out(data: DataSet, n: int, seed: int = 0, split: str = "test") -> tuple[Tensor, Tensor | None]:
    return data.tensors(split if split in data.splits else "all", limit=n, seed=seed)


@torch.no_grad()
def sample_pictures(model, data: DataSet, path: Path, *, n: int = 64, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    x = model.sample(n, generator=g)
    kw = {}
    if data.kind == "points":
        kw = {"real": data.tensors("test", limit=2000)[0], "centres": data.meta.get("centres")}
    return save_samples(x, path, kind=data.kind, nrow=getattr(model, "num_classes", None), **kw)


@torch.no_grad()
def reconstruction_picture(model, data: DataSet, path: Path, *, n: int = 32, seed: int = 0) -> Path:
    x, _ = held_out(data, n, seed)
    x = x.to(model.device)
    return save_reconstructions(x, model.reconstruct(x), path, nrow=min(16, n))


@torch.no_grad()
def interpolation_picture(model, data: DataSet, path: Path, *, pairs: int = 8, steps: int = 10,
                          spherical: bool = False, seed: int = 0, split: str = "test") -> Path:
    """One row per pair of held-out images: the two ends are the images' codes, decoded.

    Held-out subsets come sorted by index (by class for mnist5k), so the first half is paired with
    the second half reversed: different digits at the two ends.
    """
    x, _ = held_out(data, 2 * pairs, seed, split)
    pairs = min(pairs, len(x) // 2)
    z = model.encode(x.to(model.device))  # (2P, D)
    a, b = z[:pairs], z[pairs:2 * pairs].flip(0)
    path_z = interpolate(a, b, steps, spherical=spherical)  # (P, steps, D)
    frames = model.decode(path_z.reshape(-1, z.shape[1]))  # (P*steps, *shape)
    return save_image_grid(frames, path, steps)


@torch.no_grad()
def latent_pictures(model, data: DataSet, folder: Path, *, n: int = 1000) -> list[Path]:
    x, y = held_out(data, n)
    z = torch.cat([model.encode(c.to(model.device)) for c in x.split(500)]).cpu()
    out = [save_latent_scatter(z, folder / "latent.png", labels=y, class_names=data.class_names)]
    if z.shape[1] == 2 and data.kind == "image":
        out.append(save_manifold(lambda c: model.decode(c.to(model.device)), folder / "manifold.png"))
    return out


def write_run_pictures(model, data: DataSet, folder: Path) -> list[Path]:
    """All pictures that apply to this model, into the run folder."""
    model.eval()
    folder = Path(folder)
    out = [sample_pictures(model, data, folder / "samples.png")]
    if has_encoder(model):
        if data.kind == "image":
            out.append(reconstruction_picture(model, data, folder / "recon.png"))
            out.append(interpolation_picture(model, data, folder / "interp.png"))
            out.append(interpolation_picture(model, data, folder / "interp_slerp.png", spherical=True))
        out += latent_pictures(model, data, folder)
    return out
