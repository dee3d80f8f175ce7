"""The run folder is the record: ``runs/<id>-<model>-<data>/``.

It holds ``config.json`` (everything needed to rebuild the model), ``checkpoint.pt`` (the latest
full training state, for ``--resume``), ``best.pt`` (the weights with the best validation metric;
none with ``train.select_metric=last``), ``stats.jsonl`` (training scalars), ``metrics.jsonl``
(evaluations over training), ``tb/`` (TensorBoard events), ``samples/`` (grids over training) and
the final pictures. Sampling, evaluation and the explorer take only this path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import DataConfig, DataInfo, RunConfig, TrainConfig, from_dict
from ..errors import GenlabError
from ..registry import MODELS
from .checkpoint import atomic_write_bytes, load_checkpoint


@dataclass(frozen=True)
class Run:
    """A run folder: ``genlab.open_run(path)`` opens one, ``genlab.train(...)`` returns one.

    ``run.load()`` rebuilds its model with the best weights (``which="last"``: the last), in eval
    mode; ``run.config`` is its ``RunConfig``; ``run.data()`` its data set (or another, checked).
    """

    path: Path

    @property
    def config(self) -> RunConfig:
        return self.read_config()

    def load(self, which: str = "best", *, device: str = "cpu"):
        """The run's model (a ``GenerativeModel`` in eval mode) with its ``best`` or ``last`` weights."""
        return load_model(self, which=which, device=device)[0]

    def data(self, spec: str | None = None):
        """The run's own data set, or ``spec`` loaded at the run's image size and checked for shape."""
        from .data import data_for_run

        return data_for_run(self.read_config(), spec)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def stats(self) -> Path:
        return self.path / "stats.jsonl"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    def write_config(self, config: RunConfig) -> None:
        atomic_write_bytes(self.config_file, config.to_json().encode())

    def read_config(self) -> RunConfig:
        return read_run_config(self.config_file)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "data"


def new_run(root: Path, model: str, data: str, *, name: str | None = None) -> Run:
    """Create the next numbered run folder under ``root``: 0001-vae-mnist5k, 0002-...; or the
    folder ``root/name`` when a name is given (a quality of a codec ladder), which must not exist."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenlabError(f"cannot make the runs folder {root}: {err.strerror or err}") from None
    if name is not None:
        try:
            (root / name).mkdir()
        except FileExistsError:
            raise GenlabError(f"run folder {root / name} already exists") from None
        return Run(root / name)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"(\d{4,})-", p.name))]
    number = max(numbers, default=0) + 1
    while True:
        path = root / f"{number:04d}-{_safe(model)}-{_safe(data)}"
        try:
            path.mkdir()
            return Run(path)
        except FileExistsError:  # another process took this number
            number += 1


def open_run(path: str | Path) -> Run:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise GenlabError(f"run folder {path} does not exist")
    if not (path / "config.json").is_file():
        raise GenlabError(f"{path} is not a genlab run folder (no config.json)")
    return Run(path)


def read_run_config(file: Path) -> RunConfig:
    """The run's config, every field checked; a GenlabError naming the file and the field otherwise."""
    try:
        raw = json.loads(Path(file).read_text())
        model = raw["model"]
        info = raw["data_info"]
    except KeyError as err:
        raise GenlabError(f"{file} is not a valid genlab config (it has no {err})"[:300]) from None
    except (OSError, ValueError, TypeError) as err:
        raise GenlabError(f"{file} is not a valid genlab config ({err})"[:300]) from None
    try:
        if not isinstance(model, str):
            raise GenlabError(f"model={model!r} is not a model name"[:200])
        return RunConfig(
            model=model,
            model_config=from_dict(MODELS.get(model).Config, raw.get("model_config", {})),
            data=from_dict(DataConfig, raw.get("data", {})),
            train=from_dict(TrainConfig, raw.get("train", {})),
            data_info=from_dict(DataInfo, info),
        )
    except GenlabError as err:
        raise GenlabError(f"{file}: {err}") from None


def build_model(run_config: RunConfig):
    """Build a model from a ``RunConfig``: the registry gives the class, the config its shape.

    The initial weights depend only on ``train.seed``, not on what ran before in the process.
    """
    import torch

    cls = MODELS.get(run_config.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run_config.train.seed)
        return cls(run_config.model_config, run_config.data_info)


def load_model(run: Run | str | Path, *, which: str = "best", device: str = "cpu"):
    """(model, config): the run's model rebuilt from config.json with its ``best`` (or ``last``) weights."""
    if which not in ("best", "last"):
        raise GenlabError(f"which={which!r}: use 'best' or 'last'")
    run = run if isinstance(run, Run) else open_run(run)
    config = run.read_config()
    model = build_model(config)
    file = run.best if which == "best" and run.best.is_file() else run.checkpoint
    if not file.is_file():
        raise GenlabError(f"run {run.path} has no checkpoint yet")
    state = load_checkpoint(file)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as err:
        raise GenlabError(f"checkpoint {file} does not match the model in config.json ({err})"[:300]) from None
    return model.to(device).eval(), config
