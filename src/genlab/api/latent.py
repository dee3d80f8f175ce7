"""The latent tools on a run: interpolation, traversals, projection, arithmetic, attribute vectors and
nearest neighbours, each one call that loads the run, resolves the named examples and writes its file.

The tensor-level tools are in ``genlab.latent``; these functions add what a run folder gives them:
the run's data (for references such as ``test:12``, ``label=3``, ``thickness+``), its feature network
(guiding projection for models without an encoder, and scoring the effect of an attribute vector)
and its picture grid. Examples are named as in ``genlab.latent.references``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import GenlabError
from ..latent.attributes import arithmetic
from ..latent.edits import attribute_edit, codes_of
from ..latent.interpolate import interpolate
from ..latent.neighbours import copy_ratio, nearest
from ..latent.project import project
from ..latent.references import resolve_all
from ..latent.traverse import code_grid, decode_grid, dimension_grid, sweep
from ..models.capabilities import Decodes, Encodes, NamedUnits, ReadableCodes
from ..pictures.grids import save_image_grid
from ..runs import Run, data_for_run, load_model, open_run
from ..training import resolve_device

RunLike = Run | str | Path


@dataclass(frozen=True)
class Examples:
    """Where named examples come from, and how a model without an encoder finds their codes."""

    data: str | None = None  # the data set references name (None: the run's own)
    split: str | None = None  # split of label= and measure references (None: test)
    k: int = 20  # items a label= or measure reference takes
    starts: int = 8  # projection: random starts
    project_steps: int = 300  # projection: optimiser steps per start


class LatentRun:
    """A run's image model opened for the latent tools; its data and feature network load once, on first use."""

    def __init__(self, run: RunLike, *, examples: Examples = Examples(), which: str = "best", device: str = "cpu",
                 tool: str = "this tool"):
        run = run if isinstance(run, Run) else open_run(run)
        self.model, self.config = load_model(run, which=which, device=resolve_device(device))
        self.examples = examples
        if self.config.data_info.kind != "image":
            raise GenlabError(f"`genlab {tool}` draws images, and {self.config.model!r} on "
                              f"{self.config.data.spec} makes {self.config.data_info.kind}")
        if not isinstance(self.model, Decodes):
            raise GenlabError(f"a {self.config.model!r} model has no decode(z), so it has no latent to explore")

    @functools.cached_property
    def data(self):
        """The data set references resolve against."""
        return data_for_run(self.config, self.examples.data)

    @functools.cached_property
    def own_data(self):
        """The run's own data set (its training split feeds the feature network and the neighbours)."""
        return self.data if self.examples.data is None else data_for_run(self.config, None)

    @functools.cached_property
    def features(self):
        """The feature network trained on the run's own data set."""
        from ..evaluation import feature_extractor

        return feature_extractor(self.own_data)

    def images(self, refs: list[str]) -> Tensor:
        """Named examples -> images (M, C, H, W) at the model's size."""
        return resolve_all(refs, self.data, tuple(self.config.data_info.shape), split=self.examples.split or "test",
                           k=self.examples.k)

    def codes(self, x: Tensor) -> Tensor:
        """Codes (N, D) of images: the encoder's means, or projection guided by the feature network."""
        if isinstance(self.model, Encodes):
            return codes_of(self.model, x)
        return codes_of(self.model, x, feature_net=self.features.net, starts=self.examples.starts,
                        steps=self.examples.project_steps)


def write_interpolation(run: RunLike, output: str | Path, *, a: str | None = None, b: str | None = None,
                        random: bool = False, corners: bool = False, slerp: bool = False, pairs: int = 8,
                        steps: int = 10, seed: int = 0, examples: Examples = Examples(), which: str = "best",
                        device: str = "cpu") -> Path:
    """A PNG of interpolation strips: between two named examples (``a``, ``b``), between random codes
    (``random``, the default for a model without an encoder), between held-out pairs (encoders), or a
    square grid between four corner codes (``corners``)."""
    lat = LatentRun(run, examples=examples, which=which, device=device, tool="interpolate")
    model, output = lat.model, Path(output)
    g = torch.Generator().manual_seed(seed)
    if a or b:
        if not (a and b):
            raise GenlabError("give both ends: --a REF and --b REF")
        ends = lat.codes(lat.images([a, b]))
        za, zb = ends[:1], ends[-1:]
    elif random or not isinstance(model, Encodes):
        z = model.prior_sample(2 * pairs, generator=g)
        za, zb = z[:pairs], z[pairs:]
    else:
        from ..pictures.run_pictures import interpolation_picture

        return interpolation_picture(model, lat.data, output, pairs=pairs, steps=steps, spherical=slerp,
                                     split=examples.split or "test")
    if corners:  # za, zb on top; two more random codes below
        c, d = model.prior_sample(2, generator=g)
        top = interpolate(za[:1], zb[:1], steps, spherical=slerp)[0]  # (S, D)
        bottom = interpolate(c[None], d[None], steps, spherical=slerp)[0]
        z = interpolate(top, bottom, steps, spherical=slerp).transpose(0, 1)  # (S, S, D)
    else:
        z = interpolate(za, zb, steps, spherical=slerp)  # (P, S, D)
    return save_image_grid(decode_grid(model, z).flatten(0, 1), output, z.shape[1])


def write_traversal(run: RunLike, output: str | Path, *, unit: str | None = None, code: int = 0,
                    dims: int | None = None, source: list[str] | None = None, span: float | None = None,
                    steps: int = 9, n: int = 8, seed: int = 0, examples: Examples = Examples(), which: str = "best",
                    device: str = "cpu") -> str:
    """A PNG sweeping one thing a row: a named unit over the inputs' codes (``unit``), InfoGAN's continuous
    ``code`` per category, or the first ``dims`` latent dimensions; returns what the rows and columns are."""
    lat = LatentRun(run, examples=examples, which=which, device=device, tool="traverse")
    model = lat.model
    layout = model.code_layout if isinstance(model, ReadableCodes) else None
    given = span is not None
    span = span if given else (2.0 if layout is not None and not dims else 3.0)
    lo, hi = -span, span
    if unit:
        names = tuple(model.unit_names) if isinstance(model, NamedUnits) else ()
        if unit not in names:
            raise GenlabError(f"--unit {unit!r}: this model names {', '.join(names) if names else 'no latent units'}")
        z = lat.codes(lat.images(source or [f"test:{','.join(map(str, range(n)))}"]))
        if not given:  # the factor's own range (rotation: one whole turn)
            lo, hi = model.unit_range(unit)
        grid = decode_grid(model, sweep(z.cpu(), names.index(unit), torch.linspace(lo, hi, steps)))
        what = f"rows: inputs; columns: unit {unit!r} from {lo:g} to {hi:g}"
    elif layout is not None and layout.cont_codes and not dims:
        grid = code_grid(model, code, torch.linspace(lo, hi, steps), seed=seed)
        what = f"rows: categories; columns: continuous code {code} from {lo} to {hi}"
    else:
        if source:
            base = lat.codes(lat.images(source[:1]))[0].cpu()
        else:
            base = model.prior_sample(1, generator=torch.Generator().manual_seed(seed))[0].cpu()
        chosen = list(range(min(dims or 10, base.numel())))
        grid = dimension_grid(model, base, chosen, torch.linspace(lo, hi, steps))
        what = f"rows: latent dimensions 0..{chosen[-1]}; columns: from {lo} to {hi}"
    save_image_grid(grid.flatten(0, 1), Path(output), grid.shape[1])
    return what


def project_images(run: RunLike, refs: list[str], output: str | Path, *, picture: str | Path | None = None,
                   seed: int = 0, examples: Examples = Examples(), which: str = "best",
                   device: str = "cpu") -> dict[str, Tensor]:
    """GAN inversion of named examples: writes ``output`` (.npz of z, x_hat, mse, psnr) and, with ``picture``,
    a PNG (inputs above, projections below); returns ``genlab.latent.project``'s result."""
    lat = LatentRun(run, examples=examples, which=which, device=device, tool="project")
    x = lat.images(refs)
    got = project(lat.model, x, starts=examples.starts, steps=examples.project_steps, feature_net=lat.features.net,
                  seed=seed)
    np.savez(output, **{k: got[k].detach().cpu().numpy() for k in ("z", "x_hat", "mse", "psnr")})
    if picture is not None:
        save_image_grid(torch.cat([x, got["x_hat"].cpu()]), Path(picture), len(x))
    return got


def write_arithmetic(run: RunLike, output: str | Path, a: list[str], b: list[str], c: list[str], *,
                     examples: Examples = Examples(), which: str = "best", device: str = "cpu") -> Path:
    """A PNG of z_a - z_b + z_c (each the mean code of its examples): on top the first image of a, b and c,
    below the decoded mean codes of a, b, c, then the result."""
    lat = LatentRun(run, examples=examples, which=which, device=device, tool="arithmetic")
    parts = [lat.images(refs) for refs in (a, b, c)]
    z = [lat.codes(p).mean(0, keepdim=True) for p in parts]  # 3 x (1, D)
    with torch.no_grad():
        decoded = lat.model.decode(torch.cat([*z, arithmetic(*z)])).cpu()  # (4, C, H, W)
    firsts = torch.cat([p[:1] for p in parts] + [torch.zeros_like(parts[0][:1])])
    return save_image_grid(torch.cat([firsts, decoded]), Path(output), 4)


def write_attribute(run: RunLike, output: str | Path, *, with_refs: list[str] | None = None,
                    without_refs: list[str] | None = None, vector: str | Path | Tensor | None = None,
                    apply: list[str] | None = None, strength: float = 1.5, steps: int = 7,
                    save: str | Path | None = None, report_json: str | Path | None = None,
                    examples: Examples = Examples(), which: str = "best", device: str = "cpu") -> dict:
    """Images moved along an attribute vector (the mean code of ``with_refs`` minus that of ``without_refs``,
    or a saved ``vector``), a row per image from -strength to strength, as a PNG; ``save`` writes the vector
    (.npz), ``report_json`` the measured effect, which is returned (``genlab.latent.effect_report``)."""
    if isinstance(vector, (str, Path)):
        vector = read_vector(vector)
    if vector is None and not (with_refs and without_refs):
        raise GenlabError("give --with REF... and --without REF... (or --vector FILE.npz)")
    lat = LatentRun(run, examples=examples, which=which, device=device, tool="attribute")
    with_x = lat.images(with_refs) if vector is None else None
    without_x = lat.images(without_refs) if vector is None else None
    x = lat.images(apply or [f"test:{','.join(map(str, range(8)))}"])
    vector, grid, report = attribute_edit(lat.model, x, vector=vector, with_x=with_x, without_x=without_x,
                                          strength=strength, steps=steps, features=lat.features,
                                          starts=examples.starts, project_steps=examples.project_steps)
    if save is not None:
        np.savez(save, vector=vector.numpy())
    save_image_grid(grid.flatten(0, 1), Path(output), grid.shape[1])
    if report_json is not None:
        Path(report_json).write_text(json.dumps(report, indent=2))
    return report


def read_vector(path: str | Path) -> Tensor:
    """An attribute vector (D,) saved by ``write_attribute(save=...)`` (an .npz with an array ``vector``)."""
    try:
        with np.load(Path(path).expanduser(), allow_pickle=False) as saved:
            vector = saved["vector"]
    except (OSError, ValueError, KeyError) as err:
        raise GenlabError(f"--vector {path}: not an attribute vector saved with --save ({err})") from None
    if vector.ndim != 1 or not np.issubdtype(vector.dtype, np.floating):
        raise GenlabError(f"--vector {path}: expected one float vector, found {vector.dtype} {vector.shape}")
    return torch.from_numpy(vector).float()


@dataclass(frozen=True)
class Neighbours:
    """Median feature distance to the nearest training image: of samples, of held-out real images, and their
    ratio (well below 1 would mean the model copies its training set)."""

    samples: float
    real: float
    ratio: float


def write_neighbours(run: RunLike, output: str | Path, *, n: int = 32, seed: int = 0, which: str = "best",
                     device: str = "cpu") -> Neighbours:
    """A PNG of rows in pairs: ``n`` samples (rounded up to rows of 8), then their nearest training images
    in the feature space of the run's feature network."""
    lat = LatentRun(run, which=which, device=device, tool="neighbours")
    per_row = 8
    data, features = lat.own_data, lat.features
    train_x, _ = data.tensors("train")
    train_f = features.features(train_x)
    n = -(-n // per_row) * per_row
    with torch.no_grad():
        samples = lat.model.sample(n, generator=torch.Generator().manual_seed(seed)).cpu()
    idx, dist = nearest(features.features(samples), train_f)
    test_x, _ = data.tensors("test", limit=max(n, 500))
    _, real_dist = nearest(features.features(test_x), train_f)
    rows = []
    for i in range(0, n, per_row):
        rows += [samples[i:i + per_row], train_x[idx[i:i + per_row]]]
    save_image_grid(torch.cat(rows), Path(output), per_row)
    return Neighbours(float(dist.median()), float(real_dist.median()), float(copy_ratio(dist, real_dist)))


def write_analogies(run: RunLike, output: str | Path, *, n: int = 10, seed: int = 0, data: str | None = None,
                    split: str | None = None, which: str = "best", device: str = "cpu") -> int:
    """A PNG, one row per held-out input of a class-conditional encoder model: the input, then its style
    code z decoded with every class; returns the number of classes."""
    from ..catalog import models_declaring, spoken_list
    from ..latent.analogies import is_conditional_encoder
    from ..pictures.run_pictures import analogy_picture
    from .inference import eval_split, need_encoder

    if n < 1:
        raise GenlabError("-n must be at least 1")
    model, config = load_model(run if isinstance(run, Run) else open_run(run), which=which,
                               device=resolve_device(device))
    need_encoder(model, config.model, "make analogies")
    if not is_conditional_encoder(model):
        able = spoken_list(models_declaring("ClassConditional", "Encodes"))
        raise GenlabError(f"a {config.model!r} model is not class-conditional, so it cannot make analogies "
                          f"({able} are)")
    dataset = data_for_run(config, data)
    if dataset.kind != "image":
        raise GenlabError(f"{dataset.name} holds points, not images: analogies are a picture of images")
    analogy_picture(model, dataset, Path(output), n=n, seed=seed, split=eval_split(split, data is None))
    return int(model.num_classes)


def write_transform(run: RunLike, image: str | Path, output: str | Path, *, rotate: float = 0.0, scale: float = 1.0,
                    move: tuple[float, float] = (0.0, 0.0), compare: bool = False, which: str = "best",
                    device: str = "cpu") -> Path:
    """Novel-view synthesis (a model that ``Transforms``, e.g. DC-IGN): the image file, encoded, its named
    units edited (``rotate`` degrees, ``scale``, ``move``) and decoded, as a PNG at the model's size;
    ``compare``: the input, its reconstruction and the transformed image side by side."""
    import math

    from PIL import Image

    from ..catalog import models_declaring, spoken_list
    from ..compression.rd import to_uint8
    from ..data.user_images import load_user_images
    from ..models.capabilities import Transforms

    if not math.isfinite(rotate) or not (scale > 0 and math.isfinite(scale)):
        raise GenlabError("--rotate must be a finite number of degrees and --scale a positive number")
    model, config = load_model(run if isinstance(run, Run) else open_run(run), which=which,
                               device=resolve_device(device))
    if not isinstance(model, Transforms):
        able = spoken_list(models_declaring("Transforms"))
        raise GenlabError(f"a {config.model!r} model has no named units to edit, so it cannot transform "
                          f"({able} can)")
    x = load_user_images([Path(image).expanduser()], config.data_info.shape).to(model.device)  # (1, C, H, W)
    with torch.no_grad():
        y = model.transform(x, rotate=math.radians(rotate), scale=scale, move=tuple(move))
        if compare:
            return save_image_grid(torch.cat([x, model.reconstruct(x), y]).cpu(), Path(output), 3)
    Image.fromarray(to_uint8(y[0])).save(output)
    return Path(output)
