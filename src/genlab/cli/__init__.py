"""The ``genlab`` command: the only place that knows argparse. Each handler parses, makes one library
call, and prints."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
