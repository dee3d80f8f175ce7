"""``genlab transform``: novel-view synthesis by editing the named units of an encoded image (one call of
``genlab.api.latent.write_transform``; the model must declare ``Transforms``, e.g. DC-IGN)."""

from __future__ import annotations


def cmd_transform(args) -> int:
    from ..api.latent import write_transform
    from .common import check_output, out

    target = check_output(args.output, (".png",))
    write_transform(args.run, args.image, target, rotate=args.rotate, scale=args.scale, move=tuple(args.move),
                    compare=args.compare, which=args.checkpoint, device=args.device)
    out(f"wrote {target}")
    return 0
