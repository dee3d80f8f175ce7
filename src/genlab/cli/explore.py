"""The ``genlab explore`` sub-command: parse, one call of ``genlab.explore.server.serve``, print the URL."""

from __future__ import annotations

from ..config import MAX_THREADS, checked_arg


def add_parsers(sub, common) -> None:
    p = sub.add_parser("explore", help="a local web page to explore runs' latent spaces (sample, move, "
                                       "interpolate, arithmetic, draw, map, curves)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders to serve (only these are readable)")
    p.add_argument("--port", type=checked_arg(int, "--port", min=0, max=65535), default=8765,
                   help="TCP port (default 8765; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; anything else is reachable from the network)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--vector", action="append", default=[], metavar="[NAME=]FILE.npz",
                   help="an attribute vector saved with `genlab attribute --save` (repeatable); .npz files "
                        "in a run folder are picked up too")
    p.add_argument("--max-upload", type=checked_arg(float, "--max-upload", min=0, min_exclusive=True, max=1000),
                   default=2.0, metavar="MB", help="largest upload (default 2 MB, at most 1000)")
    p.add_argument("--threads", type=checked_arg(int, "--threads", min=1, max=MAX_THREADS), default=None,
                   help="torch threads (default: torch's choice)")
    p.set_defaults(handler="genlab.cli.explore:cmd_explore")


def cmd_explore(args) -> int:
    from ..explore.server import serve
    from .common import out

    serve(args.runs, host=args.host, port=args.port, checkpoint=args.checkpoint, vectors=args.vector,
          max_upload_mb=args.max_upload, threads=args.threads,
          ready=lambda url, names: out(f"genlab explore: {', '.join(names)} at {url}  (Ctrl-C stops)"))
    return 0
