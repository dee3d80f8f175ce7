"""Quality ladders: one codec per quality level, trained together and used as one.

``genlab train codec --qualities 1..6`` (``genlab.api.training``) makes one folder that holds a codec run per quality::

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
from ..models.codec import LMBDA, lmbda_for  # noqa: F401  (the ladder's lambdas, re-exported)

MAX_QUALITY = 12
LADDER_FILE = "ladder.json"


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


def write_ladder(path: Path, qualities: list[int], settings: dict[int, dict] | None = None) -> None:
    """``ladder.json``: the run folder of each quality, and per config field a level sets (beside the
    quality itself, e.g. the codec's ``lmbda``) its value at each quality."""
    from ..runs.checkpoint import atomic_write_bytes

    settings = settings or {q: {"lmbda": lmbda_for(q)} for q in qualities}
    fields = [k for k in settings[qualities[0]] if k != "quality"] if qualities else []
    record = {"qualities": {str(q): f"q{q}" for q in qualities},
              **{k: {str(q): settings[q][k] for q in qualities} for k in fields}}
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


def load_codec(run_path: str | Path, which: str = "best"):
    """(model, config) of a codec run: a model that ``CodesToBits``, else a GenlabError."""
    from ..models.capabilities import CodesToBits
    from ..runs import load_model

    model, config = load_model(run_path, which=which)
    if not isinstance(model, CodesToBits):
        raise GenlabError(f"{run_path} is a {config.model!r} run, not a codec")
    return model, config
