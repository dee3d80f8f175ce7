"""``genlab.train``: a model name and data in, a finished run folder out.

It builds the run's config (the family's defaults, ``overrides``, the budget), creates the run folder,
trains with validation and pictures wired in (``make_trainer``), then writes the final pictures and
test metrics. What a model needs from training it declares: its batch plan (``model.batch_plan``), a
labels budget for a model that ``LearnsFromPartialLabels``, a ladder of qualities for a
``QualityLadder``. Under torchrun every process calls it; rank 0 alone creates, writes and reports.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DataConfig, RunConfig, TrainConfig, apply_overrides, check_names, parse_duration
from ..data import DataSet
from ..errors import DiskFull, GenlabError
from ..evaluation import evaluate as evaluate_model
from ..evaluation import format_table
from ..evaluation.evaluate import NOT_APPLICABLE
from ..models.base import GenerativeModel
from ..models.capabilities import LearnsFromPartialLabels, QualityLadder, issubclass_declared
from ..registry import METRICS, MODELS
from ..runs import Run, atomic_write_bytes, build_model, data_info, load_model, load_run_data, new_run, open_run
from ..runs.checkpoint import disk_full
from ..training import Trainer, distributed, resolve_device
from ..training.signals import StopSignals
from ..training.trainer import Validation

log = logging.getLogger("genlab")

DEFAULT_DATA = "mnist5k"
Notify = Callable[[str], None]
DataLike = str | DataSet | np.ndarray | torch.Tensor | tuple


def make_trainer(model: GenerativeModel, data: DataSet, run: Run, config: TrainConfig, *,
                 progress: bool = True, stop: StopSignals | None = None) -> Trainer:
    """A ``Trainer`` whose validation is ``genlab.evaluation`` on the val split (the metrics of
    ``config.eval_metrics``, else the model's ``default_eval_metrics``) and whose pictures are sample grids
    (and a critic's field on 2-D points)."""
    names = config.eval_metrics if config.eval_metrics is not None else model.default_eval_metrics

    def validate(m: GenerativeModel) -> Validation:
        known = [name for name in names if name in METRICS]
        result = evaluate_model(m, data, split="val", metrics=known, n=config.eval_n, nll_k=1, seed=config.seed)
        # metrics this data set is too small for, with the reason and the minimum they need
        too_few = {k: why for k, why in result["info"]["skipped"].items() if why != NOT_APPLICABLE}
        return Validation(result["values"], result["floor"],
                          {k: METRICS.get(k).higher_is_better for k in result["values"] if k in METRICS}, too_few)

    def snapshot(m: GenerativeModel, folder: Path, step: int) -> Path:
        from ..pictures.run_pictures import training_pictures

        return training_pictures(m, data, folder, step, seed=config.seed + 12345)

    return Trainer(model, data, run, config, validate=validate, snapshot=snapshot, progress=progress, stop=stop)


def as_override_list(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """``{"model.latent_dim": 16, "model.hidden": (32,)}`` (or ``["model.latent_dim=16"]``) -> KEY=VALUE texts."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        def text(v: Any) -> str:
            if isinstance(v, tuple | list):
                return ",".join(map(str, v))
            return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

        return [f"{k}={text(v)}" for k, v in overrides.items()]
    return [str(s) for s in overrides]


def _duration(value: float | str | None) -> float | None:
    """Seconds, or a text as ``--time`` takes ("90s", "3m")."""
    return None if value is None else float(value) if isinstance(value, int | float) else parse_duration(value)


def _budget(train: TrainConfig, *, steps, epochs, time, cpu_time, seed) -> TrainConfig:
    duration = _duration
    budget = {"time": duration(time), "cpu_time": duration(cpu_time), "epochs": epochs, "steps": steps, "seed": seed}
    return replace(train, **{k: v for k, v in budget.items() if v is not None})


def _in_memory_spec(data: DataLike, folder: Path) -> str:
    """Arrays or tensors (images (N, H, W) / (N, C, H, W) uint8 or floats in [0, 1], or points (N, 2);
    ``(x, y)`` with labels) -> written to ``folder/data.npz``, the npz spec that reads them back."""
    x, y = data if isinstance(data, tuple) else (data, None)
    arrays = {"x": x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)}
    if y is not None:
        arrays["y"] = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(folder / "data.npz", buffer.getvalue())
    return f"npz:{(folder / 'data.npz').resolve()}"


def train(model: str, data: DataLike | None = None, *, steps: int | None = None, time: float | str | None = None,
          cpu_time: float | str | None = None, epochs: float | None = None, runs: str | Path = "runs",
          seed: int | None = None, progress: bool = True,
          overrides: Mapping[str, Any] | Sequence[str] | None = None, labels: int | None = None,
          label_seed: int | None = None, qualities: str | Sequence[int] | None = None,
          resume: str | Path | None = None, final: bool = True, run_name: str | None = None,
          notify: Notify | None = None, stop: StopSignals | None = None) -> Run:
    """Train ``model`` (a name from ``genlab list``) and return its run folder.

    ``data``: None (mnist5k, or a resumed run's own data), a spec as ``--data`` takes ("mnist5k",
    "toy2d:ring8", "folder:PATH"), a ``DataSet``, or
    in-memory images (N, H, W) / (N, C, H, W) (uint8, or floats in [0, 1]) or points (N, 2), as a
    tensor or array, or ``(x, y)`` with labels (they are kept in the run folder as ``data.npz``).
    Budget (the smallest wins; none: 10 epochs): ``steps``, ``epochs``, ``time`` / ``cpu_time`` (seconds
    or "90s", "3m"). ``overrides``: config fields, ``{"model.latent_dim": 16, "train.lr": 3e-4}``.
    ``labels``: keep N balanced train labels and hide the rest (a model that learns from partial
    labels); ``qualities``: "1..6" trains a ladder, one run per quality level (a ``QualityLadder``), and
    returns the ladder folder. ``resume``: continue that run. ``final``: write the final pictures and test
    metrics. ``notify``: called with each line worth showing a person (the run folder, the result);
    None: they are logged. ``stop``: the ``StopSignals`` that turn SIGINT/SIGTERM into "save and stop"
    (None: a new one): from building the trainer to the last write a stop signal never loses trained
    work; ``stop.insisted`` tells whether a second signal came (the CLI then exits 130).
    """
    notify = notify or log.info
    sets = as_override_list(overrides)
    model_cls = MODELS.get(model)
    stop = stop if stop is not None else StopSignals()
    if resume is None:
        _check_folder(Path(runs), f"--runs {runs}")
    if qualities is not None:
        return _train_ladder(model, model_cls, data, qualities, resume=resume, sets=sets, runs=runs, notify=notify,
                             steps=steps, time=time, cpu_time=cpu_time, epochs=epochs, seed=seed, progress=progress,
                             labels=labels, label_seed=label_seed, final=final, stop=stop)
    try:
        return _train(model, model_cls, data, steps=steps, time=time, cpu_time=cpu_time, epochs=epochs, runs=runs,
                      seed=seed, progress=progress, sets=sets, labels=labels, label_seed=label_seed, resume=resume,
                      final=final, run_name=run_name, notify=notify, stop=stop)
    finally:
        distributed.shutdown()


def _check_folder(path: Path, what: str) -> None:
    """A folder that exists, or can be made: no file in its place or on its path."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise GenlabError(f"{what}: {part} is not a folder")
            return


def _train(model: str, model_cls, data: DataLike, *, steps, time, cpu_time, epochs, runs, seed, progress, sets,
           labels, label_seed, resume, final, run_name, notify: Notify, stop: StopSignals) -> Run:
    given_data = data
    spec = data if isinstance(data, str) else None
    budget = dict(steps=steps, epochs=epochs, time=time, cpu_time=cpu_time, seed=seed)
    if resume:
        run = open_run(resume)
        config = run.read_config()
        if config.model != model:
            raise GenlabError(f"{run.path} is a {config.model!r} run, not {model!r}")
        if spec and spec != config.data.spec:
            raise GenlabError(f"{run.path} was trained on {config.data.spec!r}, not {spec!r}")
        if labels is not None and labels != config.data.labels:
            raise GenlabError(f"{run.path} was trained with a labels budget of {config.data.labels}, not {labels}")
        train_cfg = apply_overrides({"train": config.train}, sets)["train"]
        # time / cpu_time count this invocation, steps / epochs the total; with none given, the run's
        # own budget stands (its steps/epochs target, or its time once more)
        if time or cpu_time or epochs is not None or steps is not None:
            train_cfg = replace(train_cfg, time=None, cpu_time=None, steps=None, epochs=None)
        config = replace(config, train=_budget(train_cfg, **budget))
    else:
        parts = apply_overrides({"model": model_cls.Config(), "train": TrainConfig(**model_cls.train_defaults),
                                 "data": DataConfig(spec=spec or DEFAULT_DATA)}, sets)
        chosen = {"labels": labels, "label_seed": label_seed}
        parts["data"] = replace(parts["data"], **{k: v for k, v in chosen.items() if v is not None})
        config = RunConfig(model=model, model_config=parts["model"], data=parts["data"],
                           train=_budget(parts["train"], **budget))
    check_names(config)  # the model, metric names: known to the registries
    resolve_device(config.train.device)  # a device this machine has, before anything is written
    world = distributed.init_from_env(config.train.device)
    tell = notify if world.main else (lambda text: None)
    if not world.main:
        logging.getLogger().setLevel(logging.WARNING)
    arrays = given_data is not None and not isinstance(given_data, str | DataSet)
    with tempfile.TemporaryDirectory(prefix="genlab-data-") as scratch:
        if arrays:  # checked and read by the npz loader, then kept in the run folder
            config = replace(config, data=replace(config.data, spec=_in_memory_spec(given_data, Path(scratch))))
        if isinstance(given_data, DataSet) and not resume:
            loaded = given_data
            config = replace(config, data=replace(config.data, spec=given_data.name))
        else:
            loaded = load_run_data(config.data)
        config = replace(config, data_info=data_info(loaded))
        if not resume:
            config = replace(config, train=_kind_defaults(model_cls, config, sets))
        net = build_model(config)
        loaded, labelled = label_budget(config, net, loaded)
        if net.batch_plan is not None:  # e.g. one-factor batches: the data must be able to serve them
            net.batch_plan.check(loaded, f"a {config.model!r} model")
        if not resume:
            made = new_run(Path(runs), config.model, loaded.name, name=run_name) if world.main else None
            run = Run(Path(distributed.broadcast_object(None if made is None else str(made.path), world)))
        if arrays:
            kept = run.path / "data.npz"
            if world.main:
                atomic_write_bytes(kept, (Path(scratch) / "data.npz").read_bytes())
            config = replace(config, data=replace(config.data, spec=f"npz:{kept.resolve()}"))
    if world.main:
        run.write_config(config)
    tell(f"run folder: {run.path}" + (f" ({world.size} processes, {world.backend})" if world.distributed else ""))
    if labelled is not None and world.main:
        from ..data.labels import write_label_record

        record = write_label_record(run.path / "labelled.json", loaded, labelled, n=config.data.labels,
                                    seed=config.data.label_seed, share=config.data.label_share)
        tell(f"labels budget: {len(labelled)} labelled train examples, the rest unlabelled ({record})")
    # from here to the last write a stop signal never loses trained work (training.signals): the first
    # ends training at the step in progress, saves, and skips or cuts short the rest; during setup it
    # waits for the trainer, which then saves at once
    with stop:
        with stop.abortable(at=2):
            stop.pause_point("setup")
            trainer = make_trainer(net, loaded, run, config.train, progress=progress, stop=stop)
            if resume:
                trainer.resume()
        result = trainer.fit()
        status = "interrupted" if result.interrupted else "finished"
        tell(f"{status} at step {result.step} ({result.epochs:.1f} epochs, {result.seconds:.0f} s); "
             f"checkpoint: {run.checkpoint}")
        if not final or not world.main:
            return run
        try:
            with stop.abortable():
                stop.pause_point("final-report")
                finish_run(run, loaded, notify=tell)
        except KeyboardInterrupt:
            tell(f"stopped: the final report is skipped (the run is saved; `genlab evaluate {run.path}` "
                 f"gives the test metrics)")
        except OSError as err:  # a picture or metrics.json: the run itself is saved
            if not disk_full(err):
                raise
            what = err if isinstance(err, DiskFull) else f"the disk is full: could not write {err.filename}"
            raise DiskFull(f"{what}; the run is saved ({run.checkpoint}, step {result.step})") from None
    return run


def _kind_defaults(model_cls, config: RunConfig, sets: list[str]) -> TrainConfig:
    """The run's training config with the model's defaults for its kind of data (``train_defaults_by_kind``),
    except those the user set."""
    given = {s.split("=", 1)[0].strip() for s in sets}
    chosen = model_cls.train_defaults_by_kind.get(config.data_info.kind, {})
    return replace(config.train, **{k: v for k, v in chosen.items() if f"train.{k}" not in given})


def label_budget(config: RunConfig, model: GenerativeModel, data: DataSet):
    """A labels budget (``config.data.labels`` N): (a view of the data whose train batches show N balanced
    labels, their indices); (data, None) without one. Only a model that ``LearnsFromPartialLabels`` takes one."""
    n = config.data.labels
    if n is None:
        return data, None
    if not isinstance(model, LearnsFromPartialLabels):
        able = [m for m in MODELS.names() if _declares(m, "LearnsFromPartialLabels")]
        raise GenlabError(f"--labels {n}: a {config.model!r} model does not learn from partly labelled data "
                          f"(these do: {', '.join(able) or 'none'})")
    from ..data.labels import with_label_budget

    return with_label_budget(data, n, config.data.label_seed, share=config.data.label_share)


def _declares(name: str, capability: str) -> bool:
    from ..models.capabilities import declared

    return capability in declared(MODELS.get(name))


def finish_run(run: Run, data: DataSet, *, notify: Notify | None = None) -> dict:
    """Best weights -> pictures in the run folder and test metrics in metrics.json; returns the metrics."""
    from ..pictures.run_pictures import write_run_pictures

    notify = notify or log.info
    model, _ = load_model(run)
    pictures = write_run_pictures(model, data, run.path)
    result = evaluate_model(model, data, split="test")
    atomic_write_bytes(run.path / "metrics.json", json.dumps(result, indent=2).encode())
    notify(format_table(result))
    notify(f"pictures: {', '.join(str(p) for p in pictures)}")
    notify(f"curves:   {run.path / 'curves.png'}  (TensorBoard: tensorboard --logdir {run.path / 'tb'})")
    notify(f"metrics:  {run.path / 'metrics.json'}")
    return result


def _train_ladder(model: str, model_cls, data: DataLike, qualities: str | Sequence[int], *, resume, sets, runs,
                  notify: Notify, stop: StopSignals, **rest) -> Run:
    """One run per quality level, in one ladder folder (``genlab.compression.ladder``); each level gets
    the whole budget."""
    from ..compression.ladder import parse_qualities, write_ladder

    if not issubclass_declared(model_cls, QualityLadder):
        raise GenlabError(f"--qualities trains a ladder of quality levels; {model!r} has no qualities")
    if resume:
        raise GenlabError("--qualities cannot --resume; resume one quality's run folder instead")
    fields = "|".join(map(re.escape, model_cls.ladder_fields))
    if any(re.match(rf"(model\.)?({fields})\s*=", s) for s in sets):
        raise GenlabError(f"--qualities sets {' and '.join(model_cls.ladder_fields)} per level; "
                          f"drop --set {'/'.join(model_cls.ladder_fields)}")
    levels = parse_qualities(",".join(map(str, qualities)) if not isinstance(qualities, str) else qualities)
    spec = data if isinstance(data, str) else DEFAULT_DATA if data is None else "arrays"
    root = new_run(Path(runs), model, spec).path
    write_ladder(root, levels, {q: model_cls.ladder_settings(q) for q in levels})
    with stop:  # shared by the levels: a stop signal saves the one in training and ends the ladder
        for q in levels:
            level = [*sets, *(f"model.{k}={v}" for k, v in model_cls.ladder_settings(q).items())]
            train(model, data, overrides=level, runs=root, run_name=f"q{q}", notify=notify, stop=stop, **rest)
            if stop.requested:
                notify(f"ladder: stopped at quality {q}; {root} holds the qualities trained so far")
                return Run(root)
    notify(f"ladder: {root} (qualities {', '.join(map(str, levels))})")
    return Run(root)
