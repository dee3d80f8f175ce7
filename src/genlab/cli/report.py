"""Sub-commands ``report`` and ``tour`` (the work is in ``genlab.report``)."""

from __future__ import annotations

from ..errors import GenlabError
from .common import out


def add_parsers(sub, common) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of one or more runs")
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("-o", "--output", required=True, help="the .html file to write")
    p.set_defaults(handler="genlab.cli.report:cmd_report")

    p = sub.add_parser("tour", help="train the lecture's arc on the built-in data and write tour/index.html")
    p.add_argument("--minutes", type=float, default=15.0, help="training budget of the whole tour (default 15)")
    p.add_argument("-o", "--output", default="tour", help="folder for index.html, pictures and runs (default tour)")
    p.add_argument("--tiny", action="store_true", help="a few steps per model on digits (a smoke test)")
    p.set_defaults(handler="genlab.cli.report:cmd_tour")


def cmd_report(args) -> int:
    from ..report.run_pages import write_report

    if not str(args.output).endswith(".html"):
        raise GenlabError(f"output {args.output} must end in .html")
    out(f"wrote {write_report(args.runs, args.output)}")
    return 0


def cmd_tour(args) -> int:
    from ..report.tour import Tour

    if args.minutes <= 0:
        raise GenlabError("--minutes must be positive")
    out(f"wrote {Tour(args.output, minutes=args.minutes, tiny=args.tiny).run()}")
    return 0
