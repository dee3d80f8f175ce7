"""The ``genlab transform`` sub-command (parser only; the handler is ``genlab.cli.transform``)."""

from __future__ import annotations


def add_parsers(sub, common) -> None:
    """``genlab transform RUN IMAGE --rotate DEG [--scale S] [--move DX DY] -o OUT.png``."""
    p = sub.add_parser("transform", help="novel views: re-render an image rotated, scaled or moved "
                                         "(models with named units, e.g. dcign)")
    common.run(p)
    p.add_argument("image", help="a PNG (or any Pillow image), e.g. from `genlab sample -n 1`; converted to "
                                 "the run's channels and size")
    p.add_argument("--rotate", type=float, default=0.0, metavar="DEG",
                   help="rotate by this many degrees, counter-clockwise")
    p.add_argument("--scale", type=float, default=1.0, metavar="S", help="multiply the object's scale by S")
    p.add_argument("--move", type=float, nargs=2, default=(0.0, 0.0), metavar=("DX", "DY"),
                   help="move right and down, in fractions of the range the centre can take "
                        "(shapes: 1 = half the image side)")
    p.add_argument("-o", "--output", required=True, help="PNG: the transformed image, the input's size")
    p.add_argument("--compare", action="store_true",
                   help="write input, reconstruction and transformed image side by side instead")
    p.set_defaults(handler="genlab.cli.transform:cmd_transform")
