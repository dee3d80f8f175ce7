"""The pictures a finished run leaves in its folder, from any model by its capabilities.

Every model: ``samples.png``. Encoder models also: ``recon.png`` (inputs above, reconstructions
below), ``interp.png`` / ``interp_slerp.png`` (between pairs of held-out images), ``latent.png``
(codes of held-out data, coloured by label), with a 2-D latent ``manifold.png``, and, for a
class-conditional one (cvae, m2), ``analogies.png`` (style kept, class changed). A model with a
critic on 2-D points: ``dfield.png`` (D over the plane and G's gradient arrows, ``genlab.pictures.dfield``).
``training_pictures`` are the pictures over training (``samples/step-*.png``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from ..data import DataSet
from ..latent.analogies import analogy_grid, is_conditional_encoder
from ..latent.interpolate import interpolate
from ..models.capabilities import Decodes, Encodes
from .dfield import dfield_applies, dfield_picture
from .grids import save_image_grid, save_latent_scatter, save_manifold, save_reconstructions, save_samples

log = logging.getLogger(__name__)


def has_encoder(model) -> bool:
    return isinstance(model, Encodes) and isinstance(model, Decodes)


def held_out(data: DataSet, n: int, seed: int = 0, split: str = "test") -> tuple[Tensor, Tensor | None]:
    return data.tensors(split if split in data.splits else "all", limit=n, seed=seed)


@torch.no_grad()
def sample_pictures(model, data: DataSet, path: Path, *, n: int = 64, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    x = model.sample(n, generator=g)
    kw = {}
    if data.kind == "points":
        kw = {"real": data.tensors("test", limit=2000)[0], "centres": data.meta.get("centres")}
    return save_samples(x, path, kind=data.kind, nrow=model.sample_groups, **kw)


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
    the second half reversed: different digits at the two ends. A class-conditional model's class
    (one-hot of its own guess) is interpolated linearly beside z, and decoded as probabilities.
    """
    x, _ = held_out(data, 2 * pairs, seed, split)
    pairs = min(pairs, len(x) // 2)
    x = x.to(model.device)
    z = model.encode(x)  # (2P, D)
    a, b = z[:pairs], z[pairs:2 * pairs].flip(0)
    path_z = interpolate(a, b, steps, spherical=spherical).reshape(-1, z.shape[1])  # (P*steps, D)
    if not is_conditional_encoder(model):
        return save_image_grid(model.decode(path_z), path, steps)  # (P*steps, *shape)
    c = torch.nn.functional.one_hot(model.classify(x).argmax(1), model.num_classes).float()  # (2P, K)
    path_c = interpolate(c[:pairs], c[pairs:2 * pairs].flip(0), steps).reshape(-1, c.shape[1])
    return save_image_grid(model.decode(path_z, path_c), path, steps)


@torch.no_grad()
def analogy_picture(model, data: DataSet, path: Path, *, n: int = 10, seed: int = 0,
                    split: str = "test") -> Path:
    """Class-conditional encoder models: a row per held-out input, the input then its z with every
    class (``genlab.latent.analogy_grid``); z is inferred with the inputs' labels when they are
    the model's classes, else with the model's guess."""
    x, y = held_out(data, n, seed, split)
    known = y is not None and data.num_classes == model.num_classes
    grid = analogy_grid(model, x, y if known else None)  # (R, 1 + K, *shape)
    return save_image_grid(grid.flatten(0, 1), path, grid.shape[1])


@torch.no_grad()
def latent_pictures(model, data: DataSet, folder: Path, *, n: int = 1000) -> list[Path]:
    x, y = held_out(data, n)
    z = torch.cat([model.encode(c.to(model.device)) for c in x.split(500)]).cpu()
    out = []
    if len(z) >= 2:  # a scatter (and its PCA) needs two codes; a data set of 20 images holds out one
        out.append(save_latent_scatter(z, folder / "latent.png", labels=y, class_names=data.class_names))
    else:
        log.info("no latent.png: the held-out split has %d item(s), the scatter needs 2", len(z))
    if z.shape[1] == 2 and data.kind == "image":
        out.append(save_manifold(lambda c: model.decode(c.to(model.device)), folder / "manifold.png"))
    return out


def training_pictures(model, data: DataSet, folder: Path, step: int, *, seed: int) -> Path:
    """The pictures of one training step: ``step-<step>.png``, 64 samples from fixed latents (``seed``) so
    that the frames are comparable (a conditional or mixture model's groups one per column), and for a
    model with a critic on 2-D points ``dfield-<step>.png``."""
    model.eval()
    with torch.random.fork_rng(devices=[]):
        g = torch.Generator().manual_seed(seed)
        x = model.sample(64, generator=g)
    model.train()
    if dfield_applies(model, data):
        dfield_picture(model, data, folder / f"dfield-{step:07d}.png", seed=seed, title=f"step {step}")
    return save_samples(x, folder / f"step-{step:07d}.png", kind=data.kind, nrow=model.sample_groups)


def write_run_pictures(model, data: DataSet, folder: Path) -> list[Path]:
    """All pictures that apply to this model, into the run folder."""
    model.eval()
    folder = Path(folder)
    out = [sample_pictures(model, data, folder / "samples.png")]
    if dfield_applies(model, data):
        out.append(dfield_picture(model, data, folder / "dfield.png", title="final"))
    if has_encoder(model):
        if data.kind == "image":
            out.append(reconstruction_picture(model, data, folder / "recon.png"))
            out.append(interpolation_picture(model, data, folder / "interp.png"))
            out.append(interpolation_picture(model, data, folder / "interp_slerp.png", spherical=True))
        out += latent_pictures(model, data, folder)
        if data.kind == "image" and is_conditional_encoder(model):
            out.append(analogy_picture(model, data, folder / "analogies.png"))
    return out
