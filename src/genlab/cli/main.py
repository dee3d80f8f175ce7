"""The ``genlab`` command: train, sample, reconstruct, interpolate, encode, evaluate, list.

Every choice comes from the registries. Bad input prints one line and exits with code 2
(``--debug`` shows the traceback); a diverged run exits with 1; Ctrl-C during training saves.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .. import __version__
from ..config import MAX_SAMPLES
from ..errors import GenlabError, TrainingDiverged

log = logging.getLogger("genlab")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, like every other bad input
        raise GenlabError(f"{message} (see `{self.prog} --help`)")


class _TrainHelp(argparse.Action):
    """``train --help``; after a model name (``train vae --help``) also that model's options, the
    training and data options with its defaults, each with its type, default and doc."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help (after "
                         "a model name, e.g. `train vae --help`: also the options --set takes for it)")

    def __call__(self, parser, namespace, values, option_string=None):
        text = parser.format_help()
        name = getattr(namespace, "model", None)
        if name:
            text += "\n" + model_options_help(name)
        sys.stdout.write(text)
        parser.exit()


def model_options_help(name: str) -> str:
    """The options ``--set`` takes for model ``name``: its config, then train and data with its defaults."""
    from ..config import DataConfig, TrainConfig, describe_options
    from ..registry import MODELS

    model_cls = MODELS.get(name)
    parts = [(f"options of the {name} model", model_cls.Config()),
             ("training options", TrainConfig(**model_cls.train_defaults)), ("data options", DataConfig())]
    lines = []
    for title, config in parts:
        lines += [f"{title} (--set {config.section}.NAME=VALUE; name, type, default, what it is):",
                  *describe_options(config), ""]
        if config.section == "train":
            lines[-1:-1] = [f"  on {kind} data: " + ", ".join(f"{k}={v}" for k, v in chosen.items())
                            for kind, chosen in model_cls.train_defaults_by_kind.items()]
    return "\n".join(lines)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, e.g. runs/0001-vae-mnist5k")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="weights to use: best validation metric (default) or the last step")
    p.add_argument("--device", default="cpu")


def _add_data_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--data", default=None, help=f"data to {what} (default: the run's own data set)")
    p.add_argument("--split", default=None, help="train, val, test or all (default: test for the run's data, "
                                                 "all for other data)")


# sub-command groups that live beside the code they drive: each module has ``add_parsers(sub, common)``
# and sets ``handler="module:function"`` on its parsers (imported only when that command runs)
PARSER_MODULES: tuple[str, ...] = ("genlab.cli.latent_parsers", "genlab.cli.report", "genlab.cli.explore",
                                  "genlab.cli.transform_parsers")


class CommonArgs:
    """The argument helpers shared by every sub-command group."""

    run = staticmethod(lambda p: _add_run_args(p))
    data = staticmethod(lambda p, what: _add_data_arg(p, what))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="genlab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info messages")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="models, data sets and metrics")

    p = sub.add_parser("train", help="train a model; prints the run folder", add_help=False)
    p.add_argument("-h", "--help", action=_TrainHelp)
    p.add_argument("model", help="model name (see `genlab list`; `genlab train MODEL --help` lists its options)")
    p.add_argument("--data", default=None, help="data set, e.g. mnist5k, toy2d:ring8, folder:PATH (default mnist5k)")
    budget = p.add_argument_group("budget (the smallest one given wins; none: 10 epochs)")
    budget.add_argument("--time", default=None, help="wall-clock for this invocation, e.g. 90s, 3m, 1h")
    budget.add_argument("--cpu-time", default=None,
                        help="CPU time of this process, e.g. 15m: waiting for a core does not count")
    budget.add_argument("--epochs", type=float, default=None, help="total passes over the train split")
    budget.add_argument("--steps", type=int, default=None, help="total optimiser steps")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. model.latent_dim=16, train.lr=3e-4, data.image_size=32")
    p.add_argument("--runs", default="runs", help="folder that holds the run folders (default: runs)")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue this run exactly")
    p.add_argument("--seed", type=int, default=None, help="shortcut for --set train.seed=N")
    p.add_argument("--labels", type=int, default=None, metavar="N",
                   help="models that learn from partial labels (LearnsFromPartialLabels, e.g. m2): keep N train "
                        "labels, N/C per class, hide the rest")
    p.add_argument("--label-seed", type=int, default=None, metavar="S",
                   help="which balanced labelled subset (default 0); recorded in labelled.json")
    p.add_argument("--no-final", action="store_true", help="skip the final test evaluation and pictures")
    p.add_argument("--qualities", default=None, metavar="1..6",
                   help="models with quality levels (QualityLadder, e.g. codec): train one run per quality into "
                        "one ladder folder (each gets the budget)")

    p = sub.add_parser("sample", help="draw samples: .png grid or .npz arrays (x, z[, y])")
    _add_run_args(p)
    p.add_argument("-n", type=int, default=64, help=f"number of samples (at most {MAX_SAMPLES:,}); with -n 1 a .png "
                                                     "is that one image at the model's size, ready for transform")
    p.add_argument("-o", "--output", required=True, help="a .png grid or .npz arrays (a file, not a folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int, default=None, metavar="K",
                   help="class-conditional models: draw class K only; gmvae: component K (default: a row each)")
    p.add_argument("--caption", default=None, metavar="TEXT",
                   help='caption-conditional models (stackgan): e.g. "a large square at the bottom right"')

    p = sub.add_parser("reconstruct", help="held-out inputs above, their reconstructions below")
    _add_run_args(p)
    _add_data_arg(p, "reconstruct")
    p.add_argument("-n", type=int, default=32)
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("encode", help="latent codes (posterior means) of a data set -> .npz (z, y)")
    _add_run_args(p)
    _add_data_arg(p, "encode")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("evaluate", help="metrics table with the real-vs-real floor, and JSON")
    _add_run_args(p)
    _add_data_arg(p, "evaluate on")
    p.add_argument("--metrics", default=None, help="comma-separated names (default: all that apply)")
    p.add_argument("-n", type=int, default=None, help="samples per sample metric (default min(2000, split))")
    p.add_argument("--nll-k", type=int, default=200, help="importance samples for the nll estimate")
    p.add_argument("--json", default=None, help="also write the results here")

    p = sub.add_parser("cluster", help="k-means on latent means vs pixels (and the model's own clusters)")
    _add_run_args(p)
    p.add_argument("--data", default=None, help="data to cluster (default: the run's own data set)")
    p.add_argument("--split", default=None, help="train, val, test or all (default: all)")
    p.add_argument("--k", type=int, default=10, help="number of k-means clusters (default 10)")
    p.add_argument("-o", "--output", required=True, help="PNG: one row of images per cluster")
    p.add_argument("--json", default=None, help="also write the scores here")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("probe", help="linear probe on latent means from a few balanced labels (M1)")
    _add_run_args(p)
    p.add_argument("--data", default=None, help="labelled data with train and test splits (default: the run's)")
    p.add_argument("--labels", type=int, default=100, help="labelled train examples, split evenly over classes")
    p.add_argument("--seed", type=int, default=0, help="which balanced subset")
    p.add_argument("--json", default=None, help="also write the accuracies here")

    p = sub.add_parser("analogies", help="class-conditional models: keep z of held-out inputs, change the class")
    _add_run_args(p)
    _add_data_arg(p, "take the inputs from")
    p.add_argument("-n", type=int, default=10, help="inputs, one row each (default 10)")
    p.add_argument("-o", "--output", required=True, help="PNG: a row per input, the input then one column per class")
    p.add_argument("--seed", type=int, default=0, help="which held-out inputs")

    p = sub.add_parser("compress", help="images -> one .glc file coded by a trained codec run")
    p.add_argument("run", help="codec run folder, or a ladder folder (then -q picks; default its middle quality)")
    p.add_argument("images", nargs="+", help="PNG (or any Pillow) images; converted to the codec's channels "
                                             "(an MLP codec's: also to its size)")
    p.add_argument("-o", "--output", required=True, help="the .glc file to write")
    p.add_argument("-q", "--quality", type=int, default=None,
                   help="quality of a ladder (or check a single run is this quality)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")

    p = sub.add_parser("decompress", help=".glc file -> PNGs with the stored names and sizes")
    p.add_argument("file", help="the .glc file")
    p.add_argument("-o", "--output", required=True, help="folder for the PNGs")
    p.add_argument("--run", default=None, help="codec run folder (or ladder) that made the file")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")

    p = sub.add_parser("rd", help="rate-distortion curves of codec runs vs JPEG, WebP, PNG; BD-rate")
    p.add_argument("run", nargs="+", help="codec run folder(s) or ladder folder(s)")
    p.add_argument("--data", default=None, help="data set (default: the run's own)")
    p.add_argument("--split", default=None, help="default: test")
    p.add_argument("-n", type=int, default=None, help="images (default: the whole split)")
    p.add_argument("-o", "--output", required=True, help="PNG plot")
    p.add_argument("--json", default=None, help="also write the curves here")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")

    for name in PARSER_MODULES:
        importlib.import_module(name).add_parsers(sub, CommonArgs)
    return parser


#: the module of each core sub-command's ``cmd_<name>`` (imported only when that command runs)
HANDLER_MODULES: dict[str, str] = {
    **dict.fromkeys(("list", "train", "sample", "reconstruct", "encode", "evaluate"), "genlab.cli.commands"),
    **dict.fromkeys(("cluster", "probe", "analogies"), "genlab.cli.clustering"),
    **dict.fromkeys(("compress", "decompress", "rd"), "genlab.cli.compression"),
}


def _handler(args):
    """The function that runs the parsed command: its group's ``handler`` or ``cmd_<name>`` of its module."""
    module, function = (args.handler.split(":") if getattr(args, "handler", None)
                        else (HANDLER_MODULES[args.command], f"cmd_{args.command}"))
    return getattr(importlib.import_module(module), function)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                            format="%(message)s", stream=sys.stderr)
        return _handler(args)(args) or 0
    except (GenlabError, TrainingDiverged) as err:
        if debug:
            raise
        print(f"genlab: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `genlab list | head`: the reader has gone; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141


__all__ = ["build_parser", "main"]
