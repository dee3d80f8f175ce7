"""Quality ladders: one codec per quality level, trained together and used as one.

``genlab train codec --qualities 1..6`` makes one folder that holds a codec run per quality::

    runs/0010-codec-mnist5k/
        ladder.json            {"qualities": {"1": "q1", ...}, "lmbda": {"1": 0.0018, ...}}
        q1/ ... q6/            ordinary codec run folders (config.json, best.pt, ...)

Quality q trains with ``lmbda = LMBDA[q]``, the rate–distortion weights CompressAI uses for its
MSE models (bpp + lambda * 255^2 * MSE), extended by doubling past 6 and halving below 1; an explicit
``--set lmbda=...`` is refused with a ladder (each quality fixes its own). Every quality gets the
whole ``--time`` / ``--steps`` / ``--epochs`` budget. ``compress``, ``decompress`` and ``rd`` take
the ladder folder or any single codec run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import GenlabError

# CompressAI's lambdas for its MSE-optimised models, qualities 1..8
LMBDA = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}
MAX_QUALITY = 12
LADDER_FILE = "ladder.json"


def lmbda_for(quality: int) -> float:
    """Quality index -> lambda: the table for 1..8, doubling per step above (halving below 1)."""
    if quality in LMBDA:
        return LMBDA[quality]
    if quality > 8:
        return LMBDA[8] * 2 ** (quality - 8)
    return LMBDA[1] / 2 ** (1 - quality)


def parse_qualities(text: str) -> list[int]:
    """'1..6', '1-6', '2,4,6' or '3' -> sorted distinct quality indices in 0..MAX_QUALITY."""
    out: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*(?:\.\.|-)\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if a > b:
                raise GenlabError(f"--qualities {text!r}: range {part!r} runs backwards")
            out.update(range(a, b + 1))
        elif part.isdigit():
            out.add(int(part))
        else:
            raise GenlabError(f"--qualities {text!r}: expected e.g. 1..6 or 1,3,5")
    bad = [q for q in out if q > MAX_QUALITY]
    if bad:
        raise GenlabError(f"--qualities: quality {bad[0]} is above the largest, {MAX_QUALITY}")
    return sorted(out)


def is_ladder(path: str | Path) -> bool:
    return (Path(path).expanduser() / LADDER_FILE).is_file()


def read_ladder(path: str | Path) -> dict[int, Path]:
    """{quality: run folder} of a ladder folder."""
    path = Path(path).expanduser()
    try:
        raw = json.loads((path / LADDER_FILE).read_text())
        return {int(q): path / name for q, name in raw["qualities"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise GenlabError(f"{path / LADDER_FILE} is not a valid ladder file ({err})") from None


def write_ladder(path: Path, qualities: list[int]) -> None:
    from ..runs.checkpoint import atomic_write_bytes

    record = {"qualities": {str(q): f"q{q}" for q in qualities},
              "lmbda": {str(q): lmbda_for(q) for q in qualities}}
    atomic_write_bytes(path / LADDER_FILE, json.dumps(record, indent=2).encode())


def run_folders(path: str | Path, quality: int | None = None, *, default: str = "all") -> list[Path]:
    """The codec run folders meant by ``path``: a single run as is; for a ladder the run of
    ``quality``, or with none given all qualities (``default="all"``) or the middle one ("middle")."""
    if not is_ladder(path):
        return [Path(path).expanduser()]
    runs = read_ladder(path)
    if quality is not None:
        if quality not in runs:
            have = ", ".join(str(q) for q in sorted(runs))
            raise GenlabError(f"ladder {path} has no quality {quality}; it has {have}")
        return [runs[quality]]
    qualities = sorted(runs)
    if default == "middle":
        return [runs[qualities[len(qualities) // 2]]]
    return [runs[q] for q in qualities]


def train_ladder(args, train_one) -> int:
    """Train one codec per quality into one ladder folder; ``train_one(args)`` is ``cmd_train``."""
    from argparse import Namespace

    from ..runs.folder import new_run

    if args.model != "codec":
        raise GenlabError(f"--qualities trains a codec ladder; {args.model!r} has no qualities")
    if args.resume:
        raise GenlabError("--qualities cannot --resume; resume one quality's run folder instead")
    if any(re.match(r"(model\.)?(lmbda|quality)\s*=", s) for s in args.sets):
        raise GenlabError("--qualities sets lmbda and quality per level; drop --set lmbda/quality")
    qualities = parse_qualities(args.qualities)
    root = new_run(Path(args.runs), "codec", args.data or "mnist5k").path
    write_ladder(root, qualities)
    for q in qualities:
        sets = [*args.sets, f"model.lmbda={lmbda_for(q)}", f"model.quality={q}"]
        code = train_one(Namespace(**{**vars(args), "qualities": None, "sets": sets, "runs": str(root),
                                      "run_name": f"q{q}"}))
        if code:
            return code
    print(f"ladder: {root} (qualities {', '.join(map(str, qualities))})", flush=True)
    return 0
