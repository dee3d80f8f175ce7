"""What every handler shares: printing a result line, checking an output path, loading the run."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import GenlabError


def out(text: str = "") -> None:
    """One line of the command's result on stdout."""
    print(text, file=sys.stdout, flush=True)


def check_output(path: str, suffixes: tuple[str, ...]) -> Path:
    """The output path, its suffix checked (before any work), not a folder, and its folder made."""
    target = Path(path).expanduser()
    if target.suffix.lower() not in suffixes:
        raise GenlabError(f"output {target} must end in {' or '.join(suffixes)}")
    if target.is_dir():
        raise GenlabError(f"output {target} is a folder; name a file")
    for part in target.parents:
        if part.exists():
            if not part.is_dir():
                raise GenlabError(f"output {target}: {part} is not a folder")
            break
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenlabError(f"cannot make the folder of output {target}: {err.strerror}") from None
    return target


def load(args):
    """(run, model, config) of ``args.run`` with ``args.checkpoint`` weights on ``args.device``."""
    from ..runs import load_model, open_run
    from ..training import resolve_device

    run = open_run(args.run)
    model, config = load_model(run, which=args.checkpoint, device=resolve_device(args.device))
    return run, model, config
