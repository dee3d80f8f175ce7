"""Sub-commands of the latent tools (parsers only; the handlers are ``genlab.cli.latent``)."""

from __future__ import annotations

_HANDLERS = "genlab.cli.latent"
_REF_HELP = ("an image file, SPLIT:I[,J..] (test:12), label=K, or a measured attribute (thickness+, "
             "slant-: k items spread over each class's upper / lower half)")


def _examples(p) -> None:
    p.add_argument("--data", default=None, help="data set the references name (default: the run's own)")
    p.add_argument("--split", default=None, help="split for label= and measure references (default: test)")
    p.add_argument("--k", type=int, default=20, help="examples a label= or measure reference takes (default 20)")
    p.add_argument("--starts", type=int, default=8, help="projection (models without an encoder): random starts")
    p.add_argument("--project-steps", type=int, default=300, help="projection: optimiser steps per start")


def add_parsers(sub, common) -> None:
    """Add this group's sub-commands to ``sub`` (argparse sub-parsers); ``common`` has the shared
    argument helpers (``common.run(p)``, ``common.data(p, what)``)."""
    p = sub.add_parser("interpolate", help="lerp/slerp strips: held-out pairs (encoders), random z's, "
                                           "two named images, or a grid between four corners")
    common.run(p)
    _examples(p)
    p.add_argument("--a", default=None, metavar="REF", help="one end: " + _REF_HELP)
    p.add_argument("--b", default=None, metavar="REF", help="the other end")
    p.add_argument("--random", action="store_true", help="between random z's (the default without an encoder)")
    p.add_argument("--corners", action="store_true", help="a square grid between four corner codes")
    p.add_argument("--slerp", action="store_true", help="spherical instead of linear interpolation")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=f"{_HANDLERS}:cmd_interpolate")

    p = sub.add_parser("traverse", help="sweep latent dimensions, InfoGAN codes (rows = categories) or a named unit")
    common.run(p)
    _examples(p)
    p.add_argument("--unit", default=None, help="a named latent unit (models that name them, e.g. dcign: rotation)")
    p.add_argument("--code", type=int, default=0, help="InfoGAN: which continuous code to sweep (from 0)")
    p.add_argument("--dims", type=int, default=None, help="sweep the first N latent dimensions instead (default 10)")
    p.add_argument("--from", dest="source", nargs="+", default=None, metavar="REF",
                   help="base code from these examples (default: a prior sample; --unit: 8 test images)")
    p.add_argument("--range", type=float, default=None, help="sweep from -R to R (default 2 for codes, 3 otherwise)")
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("-n", type=int, default=8, help="--unit: inputs, one row each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=f"{_HANDLERS}:cmd_traverse")

    p = sub.add_parser("project", help="GAN inversion: find z with G(z) closest to each image")
    common.run(p)
    _examples(p)
    p.add_argument("images", nargs="+", metavar="REF", help=_REF_HELP)
    p.add_argument("-o", "--output", required=True, help=".npz with z, x_hat, mse, psnr")
    p.add_argument("--picture", default=None, help="also a PNG: inputs above, projections below")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=f"{_HANDLERS}:cmd_project")

    p = sub.add_parser("arithmetic", help="decode z_a - z_b + z_c (encoded or projected examples)")
    common.run(p)
    _examples(p)
    for name in ("a", "b", "c"):
        p.add_argument(f"--{name}", required=True, metavar="REF", help=_REF_HELP + " (several: their mean code)")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=f"{_HANDLERS}:cmd_arithmetic")

    p = sub.add_parser("attribute", help="attribute vector = mean z (with) - mean z (without), applied to images")
    common.run(p)
    _examples(p)
    p.add_argument("--with", dest="with_refs", nargs="+", default=None, metavar="REF", help=_REF_HELP)
    p.add_argument("--without", dest="without_refs", nargs="+", default=None, metavar="REF")
    p.add_argument("--vector", default=None, help="a vector saved with --save instead of --with/--without")
    p.add_argument("--apply", nargs="+", default=None, metavar="REF", help="images to change (default: 8 test images)")
    p.add_argument("--strength", type=float, default=1.5, help="columns from -S to S times the vector")
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--save", default=None, help="write the vector to this .npz")
    p.add_argument("--json", default=None, help="write the measured effect here")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=f"{_HANDLERS}:cmd_attribute")

    p = sub.add_parser("neighbours", help="samples beside their nearest training images (is it copying?)")
    common.run(p)
    p.add_argument("-n", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=f"{_HANDLERS}:cmd_neighbours")
