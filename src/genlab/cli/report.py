"""Sub-commands ``report`` and ``tour`` (parsers only; the work is in ``report/runs.py`` and ``report/tour.py``)."""

from __future__ import annotations


def add_parsers(sub, common) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of one or more runs")
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("-o", "--output", required=True, help="the .html file to write")
    p.set_defaults(handler="genlab.report.runs:cmd_report")

    p = sub.add_parser("tour", help="train the lecture's arc on the built-in data and write tour/index.html")
    p.add_argument("--minutes", type=float, default=15.0, help="training budget of the whole tour (default 15)")
    p.add_argument("-o", "--output", default="tour", help="folder for index.html, pictures and runs (default tour)")
    p.add_argument("--tiny", action="store_true", help="a few steps per model on digits (a smoke test)")
    p.set_defaults(handler="genlab.report.tour:cmd_tour")
