"""What the latent-tool sub-commands do: interpolate, traverse, project, arithmetic, attribute,
neighbours (parsers in ``cli/latent_parsers.py``; each handler is one call of ``genlab.api.latent``)."""

from __future__ import annotations

from .common import check_output, out


def _examples(args):
    from ..api.latent import Examples

    return Examples(data=args.data, split=args.split, k=args.k, starts=args.starts, project_steps=args.project_steps)


def _run(args) -> dict:
    return {"which": args.checkpoint, "device": args.device}


def cmd_interpolate(args) -> int:
    from ..api.latent import write_interpolation

    target = check_output(args.output, (".png",))
    write_interpolation(args.run, target, a=args.a, b=args.b, random=args.random, corners=args.corners,
                        slerp=args.slerp, pairs=args.pairs, steps=args.steps, seed=args.seed,
                        examples=_examples(args), **_run(args))
    out(f"wrote {target}")
    return 0


def cmd_traverse(args) -> int:
    from ..api.latent import write_traversal

    target = check_output(args.output, (".png",))
    what = write_traversal(args.run, target, unit=args.unit, code=args.code, dims=args.dims, source=args.source,
                           span=args.range, steps=args.steps, n=args.n, seed=args.seed, examples=_examples(args),
                           **_run(args))
    out(f"wrote {target} ({what})")
    return 0


def cmd_project(args) -> int:
    from ..api.latent import project_images

    target = check_output(args.output, (".npz",))
    picture = check_output(args.picture, (".png",)) if args.picture else None
    got = project_images(args.run, args.images, target, picture=picture, seed=args.seed, examples=_examples(args),
                         **_run(args))
    if picture is not None:
        out(f"wrote {picture} (inputs above, projections below)")
    out(f"wrote {target}: z {tuple(got['z'].shape)}; PSNR median {got['psnr'].median():.2f} dB "
        f"(loss {got['start_loss'].mean():.4f} at the start -> {got['loss'].mean():.4f})")
    return 0


def cmd_arithmetic(args) -> int:
    from ..api.latent import write_arithmetic

    target = check_output(args.output, (".png",))
    write_arithmetic(args.run, target, [args.a], [args.b], [args.c], examples=_examples(args), **_run(args))
    out(f"wrote {target} (top: first image of a, b, c; bottom: decoded mean codes of a, b, c, then a - b + c)")
    return 0


def cmd_attribute(args) -> int:
    from ..api.latent import write_attribute

    target = check_output(args.output, (".png",))
    save = check_output(args.save, (".npz",)) if args.save else None
    report_json = check_output(args.json, (".json",)) if args.json else None
    report = write_attribute(args.run, target, with_refs=args.with_refs, without_refs=args.without_refs,
                             vector=args.vector, apply=args.apply, strength=args.strength, steps=args.steps,
                             save=save, report_json=report_json, examples=_examples(args), **_run(args))
    if save is not None:
        out(f"wrote {save}")
    out(f"wrote {target} (a row per image: the image, then strengths {-args.strength:g}..{args.strength:g})")
    for name, r in report.items():
        out(f"  {name}: {r}")
    return 0


def cmd_neighbours(args) -> int:
    from ..api.latent import write_neighbours

    target = check_output(args.output, (".png",))
    found = write_neighbours(args.run, target, n=args.n, seed=args.seed, **_run(args))
    out(f"wrote {target} (rows in pairs: samples, then their nearest training images in feature space)")
    out(f"median distance to the nearest training image: samples {found.samples:.3f}, held-out real "
        f"{found.real:.3f} (ratio {found.ratio:.2f}; well below 1 would mean copying)")
    return 0
