"""What the latent-tool sub-commands do: interpolate, traverse, project, arithmetic, attribute,
neighbours (parsers in ``cli/latent_parsers.py``; the work is in ``genlab.latent``). Each takes only a run
folder and names of examples."""

from __future__ import annotations

import functools
import json
import logging

import numpy as np
import torch
from torch import Tensor

from ..errors import GenlabError
from ..latent.attributes import arithmetic
from ..latent.edits import attribute_edit
from ..latent.edits import codes_of as model_codes
from ..latent.interpolate import interpolate
from ..latent.neighbours import copy_ratio, nearest
from ..latent.project import project
from ..latent.references import resolve_all
from ..latent.traverse import code_grid, decode_grid, dimension_grid, sweep
from ..models.capabilities import Decodes, Encodes, NamedUnits, ReadableCodes
from ..pictures.grids import save_image_grid
from ..runs import data_for_run
from .common import check_output, load, out

log = logging.getLogger("genlab")


def _image_model(args):
    run, model, config = load(args)
    if config.data_info.kind != "image":
        raise GenlabError(f"`genlab {args.command}` draws images, and {config.model!r} on "
                          f"{config.data.spec} makes {config.data_info.kind}")
    if not isinstance(model, Decodes):
        raise GenlabError(f"a {config.model!r} model has no decode(z), so it has no latent to explore")
    return model, config


@functools.lru_cache(maxsize=4)
def _data(config, spec: str | None):
    """The run's data (or ``spec``), loaded once per command however many examples it resolves."""
    return data_for_run(config, spec)


@functools.lru_cache(maxsize=2)
def _features(config):
    """The feature network of the run's own data set, loaded once per command."""
    from ..evaluation import feature_extractor

    return feature_extractor(_data(config, None))


def _feature_net(config):
    return _features(config).net


def codes_of(model, config, x: Tensor, args=None) -> Tensor:
    """Latent codes of images (N, *shape): the encoder's means, or projection for generators."""
    if isinstance(model, Encodes):
        return model_codes(model, x)
    return model_codes(model, x, feature_net=_feature_net(config), starts=getattr(args, "starts", 8),
                       steps=getattr(args, "project_steps", 300))


def _refs(args, config, refs: list[str]) -> Tensor:
    data = _data(config, getattr(args, "data", None))
    return resolve_all(refs, data, tuple(config.data_info.shape), split=args.split or "test", k=args.k)


# --- interpolate ---------------------------------------------------------------------------------
def cmd_interpolate(args) -> int:
    target = check_output(args.output, (".png",))
    model, config = _image_model(args)
    g = torch.Generator().manual_seed(args.seed)
    if args.a or args.b:
        if not (args.a and args.b):
            raise GenlabError("give both ends: --a REF and --b REF")
        ends = codes_of(model, config, _refs(args, config, [args.a, args.b]), args)
        a, b = ends[:1], ends[-1:]
    elif args.random or not isinstance(model, Encodes):
        z = model.prior_sample(2 * args.pairs, generator=g)
        a, b = z[:args.pairs], z[args.pairs:]
    else:
        from ..pictures.run_pictures import interpolation_picture

        data = _data(config, args.data)
        interpolation_picture(model, data, target, pairs=args.pairs, steps=args.steps, spherical=args.slerp,
                              split=args.split or "test")
        out(f"wrote {target}")
        return 0
    if args.corners:  # a grid between four corners: a, b on top; two more random codes below
        c, d = model.prior_sample(2, generator=g)
        top = interpolate(a[:1], b[:1], args.steps, spherical=args.slerp)[0]  # (S, D)
        bottom = interpolate(c[None], d[None], args.steps, spherical=args.slerp)[0]
        z = interpolate(top, bottom, args.steps, spherical=args.slerp).transpose(0, 1)  # (S, S, D)
    else:
        z = interpolate(a, b, args.steps, spherical=args.slerp)  # (P, S, D)
    save_image_grid(decode_grid(model, z).flatten(0, 1), target, z.shape[1])
    out(f"wrote {target}")
    return 0


# --- traverse ------------------------------------------------------------------------------------
def cmd_traverse(args) -> int:
    target = check_output(args.output, (".png",))
    model, config = _image_model(args)
    layout = model.code_layout if isinstance(model, ReadableCodes) else None
    span = args.range if args.range is not None else (2.0 if layout is not None and not args.dims else 3.0)
    values = torch.linspace(-span, span, args.steps)
    if args.unit:
        names = tuple(model.unit_names) if isinstance(model, NamedUnits) else ()
        if args.unit not in names:
            raise GenlabError(f"--unit {args.unit!r}: this model names "
                              f"{', '.join(names) if names else 'no latent units'}")
        x = _refs(args, config, args.source or [f"test:{','.join(map(str, range(args.n)))}"])
        z = codes_of(model, config, x, args)
        lo, hi = (-span, span)
        if args.range is None:  # the factor's range: rotation, one whole turn
            lo, hi = model.unit_range(args.unit)
            values = torch.linspace(lo, hi, args.steps)
        grid = decode_grid(model, sweep(z.cpu(), names.index(args.unit), values))
        what = f"rows: inputs; columns: unit {args.unit!r} from {lo:g} to {hi:g}"
    elif layout is not None and layout.cont_codes and not args.dims:
        grid = code_grid(model, args.code, values, seed=args.seed)
        what = f"rows: categories; columns: continuous code {args.code} from {-span} to {span}"
    else:
        if args.source:
            base = codes_of(model, config, _refs(args, config, args.source[:1]), args)[0].cpu()
        else:
            base = model.prior_sample(1, generator=torch.Generator().manual_seed(args.seed))[0].cpu()
        dims = list(range(min(args.dims or 10, base.numel())))
        grid = dimension_grid(model, base, dims, values)
        what = f"rows: latent dimensions 0..{dims[-1]}; columns: from {-span} to {span}"
    save_image_grid(grid.flatten(0, 1), target, grid.shape[1])
    out(f"wrote {target} ({what})")
    return 0


# --- project -------------------------------------------------------------------------------------
def cmd_project(args) -> int:
    target = check_output(args.output, (".npz",))
    model, config = _image_model(args)
    x = _refs(args, config, args.images)
    got = project(model, x, starts=args.starts, steps=args.project_steps, feature_net=_feature_net(config),
                  seed=args.seed)
    np.savez(target, **{k: got[k].detach().cpu().numpy() for k in ("z", "x_hat", "mse", "psnr")})
    if args.picture:
        pic = check_output(args.picture, (".png",))
        save_image_grid(torch.cat([x, got["x_hat"].cpu()]), pic, len(x))
        out(f"wrote {pic} (inputs above, projections below)")
    out(f"wrote {target}: z {tuple(got['z'].shape)}; PSNR median {got['psnr'].median():.2f} dB "
         f"(loss {got['start_loss'].mean():.4f} at the start -> {got['loss'].mean():.4f})")
    return 0


# --- arithmetic and attributes -------------------------------------------------------------------
def cmd_arithmetic(args) -> int:
    target = check_output(args.output, (".png",))
    model, config = _image_model(args)
    parts = [_refs(args, config, [r]) for r in (args.a, args.b, args.c)]
    z = [codes_of(model, config, p, args).mean(0, keepdim=True) for p in parts]  # 3 x (1, D)
    result = arithmetic(*z)
    with torch.no_grad():
        decoded = model.decode(torch.cat([*z, result])).cpu()  # (4, *shape)
    firsts = torch.cat([p[:1] for p in parts] + [torch.zeros_like(parts[0][:1])])
    save_image_grid(torch.cat([firsts, decoded]), target, 4)
    out(f"wrote {target} (top: first image of a, b, c; bottom: decoded mean codes of a, b, c, then a - b + c)")
    return 0


def cmd_attribute(args) -> int:
    target = check_output(args.output, (".png",))
    model, config = _image_model(args)
    vector = torch.from_numpy(np.load(args.vector)["vector"]).float() if args.vector else None
    both = args.with_refs and args.without_refs
    if vector is None and not both:
        raise GenlabError("give --with REF... and --without REF... (or --vector FILE.npz)")
    with_x = _refs(args, config, args.with_refs) if vector is None else None
    without_x = _refs(args, config, args.without_refs) if vector is None else None
    x = _refs(args, config, args.apply or [f"test:{','.join(map(str, range(8)))}"])
    vector, grid, report = attribute_edit(model, x, vector=vector, with_x=with_x, without_x=without_x,
                                          strength=args.strength, steps=args.steps, features=_features(config),
                                          starts=args.starts, project_steps=args.project_steps)
    if args.save:
        np.savez(check_output(args.save, (".npz",)), vector=vector.numpy())
        out(f"wrote {args.save}")
    save_image_grid(grid.flatten(0, 1), target, grid.shape[1])
    out(f"wrote {target} (a row per image: the image, then strengths {-args.strength:g}..{args.strength:g})")
    for name, r in report.items():
        out(f"  {name}: {r}")
    if args.json:
        check_output(args.json, (".json",)).write_text(json.dumps(report, indent=2))
    return 0


# --- neighbours ----------------------------------------------------------------------------------
def cmd_neighbours(args) -> int:
    target = check_output(args.output, (".png",))
    model, config = _image_model(args)
    data, features = _data(config, None), _features(config)
    train_x, _ = data.tensors("train")
    train_f = features.features(train_x)
    n = -(-args.n // 8) * 8  # whole rows of 8
    with torch.no_grad():
        samples = model.sample(n, generator=torch.Generator().manual_seed(args.seed)).cpu()
    idx, dist = nearest(features.features(samples), train_f)
    test_x, _ = data.tensors("test", limit=max(n, 500))
    _, real_dist = nearest(features.features(test_x), train_f)
    per_row = 8
    rows = []
    for i in range(0, n, per_row):  # a row of samples, then the row of their neighbours
        rows += [samples[i:i + per_row], train_x[idx[i:i + per_row]]]
    save_image_grid(torch.cat(rows), target, per_row)
    ratio = copy_ratio(dist, real_dist)
    out(f"wrote {target} (rows in pairs: samples, then their nearest training images in feature space)")
    out(f"median distance to the nearest training image: samples {dist.median():.3f}, held-out real "
         f"{real_dist.median():.3f} (ratio {ratio:.2f}; well below 1 would mean copying)")
    return 0
