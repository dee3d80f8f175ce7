"""Frozen configuration dataclasses, saved as ``config.json`` beside the weights.

A run is described by four parts: the model's own config (a ``ModelConfig`` subclass chosen by
the model), the data spec, the training options, and the data's shape (so a model can be rebuilt
without loading the data). ``--set key=value`` edits any field, typed by the dataclass annotation.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import GenlabError


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model has; a family subclasses it (a variant subclasses its parent's)."""

    latent_dim: int = 16


@dataclass(frozen=True)
class DataConfig:
    spec: str = "mnist5k"
    image_size: int | None = None  # resize images to a square of this side
    channels: int | None = None  # 1 or 3, for folders of images
    seed: int = 0  # procedural sets only; the split of built-in sets is fixed
    labels: int | None = None  # labels budget: train batches show N balanced labels, the rest y=-1
    label_seed: int = 0  # which balanced labelled subset (``genlab.data.labels``)
    label_share: float | None = 0.5  # labelled items repeated to this share of the batches (None: natural)
    # size budgets (``genlab.data.budget``), checked from file headers before anything is read or allocated
    max_pixels: int = 4096 * 4096  # pixels of one image: each file, and each item once resized
    max_side: int = 8192  # pixels along either side of one image
    max_items: int = 10_000_000  # items in one data set
    max_bytes: int = 4 * 1024**3  # bytes of one array after decompression, and of the float32 tensor made from it
    max_classes: int = 10_000  # labels are whole numbers in [0, max_classes)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 128  # the global batch: under torchrun each of N processes takes 1/N
    lr: float = 1e-3
    seed: int = 0
    steps: int | None = None  # budget: total optimiser steps ...
    epochs: float | None = None  # ... or total passes over the train split ...
    time: float | None = None  # ... or seconds of wall-clock in this invocation
    cpu_time: float | None = None  # ... or seconds of this process's CPU time (all threads) in this invocation:
    # the same work whatever else the machine runs (benchmarks on a shared machine)
    device: str = "auto"  # "auto" takes CUDA when present
    log_every: int = 50
    eval_every: int = 1000  # steps between validation evaluations (0: only at the end)
    eval_n: int = 500  # images per sample metric during training
    eval_metrics: tuple[str, ...] | None = None  # validation metrics; None: the model's own defaults
    # metric that picks best.pt: "auto" = first of eval_metrics that applies; "last": none, no best.pt is
    # written and sample / evaluate load the last weights
    select_metric: str = "auto"
    sample_every: int = 1000
    checkpoint_every: int = 1000
    grad_clip: float | None = None
    threads: int | None = None  # torch CPU threads (None: torch's default)
    precision: str = "fp32"  # "fp32", "bf16" (autocast; fp32 where the device has no fast bf16) or "auto"
    compile: bool = False  # torch.compile each phase's forward (falls back to eager if it fails)
    memory_format: str = "auto"  # "auto": channels_last for models with 2-D convolutions; or "contiguous"
    flush_denormal: bool = True  # CPU: treat denormal floats as 0 while training (x86 computes them ~100x slower)
    sync_batchnorm: bool = True  # under torchrun with NCCL: BatchNorm -> SyncBatchNorm (gloo has none)


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its data to be built."""

    shape: tuple[int, ...]
    kind: str  # "image" or "points"
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    # generative factors of procedural data (shapes): names, (lo, hi) ranges, and the period of a
    # circular factor that every item's image determines (0: not circular)
    factor_names: tuple[str, ...] | None = None
    factor_ranges: tuple[tuple[float, float], ...] | None = None
    factor_periods: tuple[float, ...] | None = None


@dataclass(frozen=True)
class RunConfig:
    model: str
    model_config: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data_info: DataInfo | None = None

    def to_json(self) -> str:
        return json.dumps(to_dict(self), indent=2)


def to_dict(cfg: Any) -> Any:
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [to_dict(v) for v in cfg]
    return cfg


def from_dict(cls: type, values: dict) -> Any:
    """Rebuild a frozen dataclass from JSON values, turning lists back into tuples by annotation."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise GenlabError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _retype(hints[name], value)
    return cls(**kwargs)


def _retype(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _retype(args[0], value)
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(_retype(args[0], v) for v in value)
    return value


_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*$")


def parse_duration(text: str) -> float:
    """'90s', '3m', '1.5h' or a plain number of seconds -> seconds."""
    m = _BUDGET.match(str(text))
    if not m:
        raise GenlabError(f"cannot read the duration {text!r}: use e.g. 90s, 3m or 1h")
    scale = {"s": 1, "sec": 1, None: 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def _parse_value(hint: Any, text: str, key: str) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null", ""):
            return None
        return _parse_value(args[0], text, key)
    try:
        if origin is tuple:
            items = [t for t in re.split(r"[,\s]+", text.strip("()[] ")) if t]
            return tuple(_parse_value(args[0], t, key) for t in items)
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        return text
    except ValueError:
        name = getattr(hint, "__name__", str(hint))
        raise GenlabError(f"--set {key}={text}: expected {name}") from None


def apply_overrides(parts: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``--set`` assignments to the named config parts ({"model": cfg, "train": cfg, ...}).

    ``model.latent_dim=16`` names the part; a bare ``latent_dim=16`` is looked up in the parts in
    order and must be unique. Unknown keys are an error that lists the valid ones.
    """
    parts = dict(parts)
    for item in assignments:
        if "=" not in item:
            raise GenlabError(f"--set {item!r}: expected key=value, e.g. model.latent_dim=16")
        key, text = item.split("=", 1)
        key = key.strip()
        if "." in key:
            part, name = key.split(".", 1)
            if part not in parts:
                raise GenlabError(f"--set {key}: unknown section {part!r}; use one of {', '.join(parts)}")
            owners = [part] if name in {f.name for f in fields(parts[part])} else []
        else:
            name = key
            owners = [p for p, cfg in parts.items() if name in {f.name for f in fields(cfg)}]
        if not owners:
            valid = [f"{p}.{f.name}" for p, cfg in parts.items() for f in fields(cfg)]
            raise GenlabError(f"--set {key}: no such option; valid: {', '.join(valid)}")
        if len(owners) > 1:
            raise GenlabError(f"--set {key}: ambiguous, say {' or '.join(f'{o}.{name}' for o in owners)}")
        cfg = parts[owners[0]]
        hint = typing.get_type_hints(type(cfg))[name]
        try:
            parts[owners[0]] = replace(cfg, **{name: _parse_value(hint, text.strip(), key)})
        except (TypeError, ValueError) as err:
            raise GenlabError(f"--set {key}={text}: {err}") from None
    return parts
