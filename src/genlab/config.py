"""Frozen configuration dataclasses, saved as ``config.json`` beside the weights.

A run is described by four parts: the model's own config (a ``ModelConfig`` subclass chosen by
the model), the data spec, the training options, and the data's shape (so a model can be rebuilt
without loading the data). ``--set key=value`` edits any field, typed by the dataclass annotation.

Every field is declared with ``option(default, doc, **rules)``: a one-line doc (``genlab train MODEL
--help`` lists them) and its rules (a range, choices, registered names). ``Checked.__post_init__``
checks every field against its annotation and rules whenever a config is made (in code, by
``--set`` or from ``config.json``), so a new field is checked by its declaration alone. A subclass
that redeclares a field with a plain default keeps its parent's doc and rules.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import numbers
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from .errors import GenlabError
from .registry import METRICS, MODELS, Registry

# limits that keep a mistyped option from asking for an absurd network or allocation
MAX_LATENT = 1024  # units (or channels) of a latent code
MAX_WIDTH = 8192  # units or channels of one layer
MAX_IMAGE_SIZE = 1024  # side of the square images are resized to
MAX_ITEM_SIDE = 4096  # each dimension of an item's shape
MAX_CLASSES = 10_000
MAX_BATCH = 65_536
MAX_THREADS = 1024
MAX_SAMPLES = 10_000  # ``sample -n``: drawn in one batch
MAX_SEED = 2**32 - 1  # numpy's range; torch's 64 bits leave room for the offsets and products the trainer derives


def option(default: Any = MISSING, doc: str = "", *, default_factory: Any = MISSING,
           min: float | None = None, max: float | None = None, min_exclusive: bool = False,
           max_exclusive: bool = False, choices: tuple | None = None, names: Registry | None = None,
           pattern: tuple[str, str] | None = None, nonempty: bool = False) -> Any:
    """A dataclass field with its doc and rules, checked by ``Checked.__post_init__``.

    ``min`` / ``max`` bound a number (each item of a tuple), inclusive unless ``*_exclusive``;
    ``choices`` lists the allowed values; ``names`` allows the names of a registry besides ``choices``
    (checked by ``check_names`` once the registry is filled); ``pattern`` is (regex, how to spell it);
    ``nonempty`` refuses an empty tuple. Floats must be finite.
    """
    rules = {"doc": doc, "min": min, "max": max, "min_exclusive": min_exclusive or None,
             "max_exclusive": max_exclusive or None, "choices": choices, "names": names, "pattern": pattern,
             "nonempty": nonempty or None}
    metadata = {k: v for k, v in rules.items() if v is not None and (k != "doc" or v)}
    return field(default=default, default_factory=default_factory, metadata=metadata)


class _Invalid(ValueError):
    """A value breaks its field's annotation or rules; the message completes "<field>=<value>: "."""


class FieldSpec(NamedTuple):
    name: str
    hint: Any
    rules: types.MappingProxyType


@functools.cache
def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """Each field of a config class: its name, annotation and rules (merged down the class hierarchy)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        rules: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            own = klass.__dict__.get("__dataclass_fields__", {})
            if f.name in own:
                rules.update(own[f.name].metadata)
        out.append(FieldSpec(f.name, hints[f.name], types.MappingProxyType(rules)))
    return tuple(out)


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) or not float(x).is_integer() else str(int(x))


def _range_text(rules) -> str:
    lo, hi = rules.get("min"), rules.get("max")
    if lo is not None and hi is not None:
        left, right = "(" if rules.get("min_exclusive") else "[", ")" if rules.get("max_exclusive") else "]"
        return f"in {left}{_number(lo)}, {_number(hi)}{right}"
    if lo is not None:
        return f"{'>' if rules.get('min_exclusive') else '>='} {_number(lo)}"
    return f"{'<' if rules.get('max_exclusive') else '<='} {_number(hi)}"


def _either(values) -> str:
    """'a', 'a or b', 'a, b or c'."""
    shown = [_show(v) for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _check_rules(value: Any, rules) -> None:
    lo, hi = rules.get("min"), rules.get("max")
    if isinstance(value, int | float) and (lo is not None or hi is not None):
        low_ok = lo is None or (value > lo if rules.get("min_exclusive") else value >= lo)
        high_ok = hi is None or (value < hi if rules.get("max_exclusive") else value <= hi)
        if not (low_ok and high_ok):
            raise _Invalid(f"must be {_range_text(rules)}")
    choices = rules.get("choices")
    if choices is not None and rules.get("names") is None and value not in choices:
        raise _Invalid(f"must be {_either(choices)}")
    if rules.get("pattern") is not None and not re.fullmatch(rules["pattern"][0], value):
        raise _Invalid(f"must be {rules['pattern'][1]}")


def _conform(value: Any, hint: Any, rules) -> Any:
    """``value`` checked against the annotation and rules; lists become tuples, integers floats where
    the annotation says so. Raises ``_Invalid``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _conform(value, inner, rules)
    if value is None:
        raise _Invalid(f"must be {_type_text(hint)}, not none")
    if origin is tuple:
        if not isinstance(value, tuple | list):
            raise _Invalid(f"must be a list of {_type_text(args[0])}")
        kinds = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        if len(kinds) != len(value):
            raise _Invalid(f"must be {len(kinds)} values")
        try:
            items = tuple(_conform(v, k, rules) for v, k in zip(value, kinds, strict=True))
        except _Invalid as err:
            raise _Invalid(str(err) if str(err).startswith("each") else f"each value {err}") from None
        if rules.get("nonempty") and not items:
            raise _Invalid("must not be empty")
        return items
    if hint is bool:
        if not isinstance(value, bool):
            raise _Invalid("must be true or false")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _Invalid("must be an integer")
        value = int(value)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _Invalid("must be a number")
        try:
            value = float(value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise _Invalid("must be a finite number")
    elif hint is str:
        if not isinstance(value, str):
            raise _Invalid("must be a string")
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            raise _Invalid(f"must be a {hint.__name__}")
        return value
    elif hint is not Any:
        raise TypeError(f"config fields of type {hint!r} are not supported")
    _check_rules(value, rules)
    return value


def _type_text(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return "|".join(_type_text(a) for a in args if a is not type(None)) + "|none"
    if origin is tuple:
        return f"{_type_text(args[0])},..." if args[-1] is Ellipsis else ",".join(map(_type_text, args))
    return getattr(hint, "__name__", str(hint))


def _show(value: Any) -> str:
    """A value as ``--set`` spells it (cut short if long)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        text = ",".join(map(_show, value))
    else:
        try:
            text = str(value)
        except ValueError:  # an integer too long to print
            text = "a huge number"
    return text if len(text) <= 80 else text[:77] + "..."


def check_value(label: str, value: Any, hint: Any, **rules: Any) -> Any:
    """``value`` checked as a field declared ``hint = option(..., **rules)`` would be; a GenlabError
    "<label>: <problem>" otherwise. For arguments that are not config fields (``sample -n``)."""
    try:
        return _conform(value, hint, rules)
    except _Invalid as err:
        raise GenlabError(f"{label}: {err}") from None


def checked_arg(hint: Any, name: str, **rules: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` for the option ``name``: the text parsed as ``hint`` and checked by ``rules``."""
    def parse(text: str) -> Any:
        return check_value(f"{name} {text}", _parse_value(hint, text, f"{name} {text}"), hint, **rules)

    parse.__name__ = _type_text(hint)
    return parse


class Checked:
    """Base of the config dataclasses: every field is checked against its annotation and rules."""

    section: ClassVar[str] = ""  # how --set and messages name this part: "model", "train", ...
    # fields added after configs of this kind were first saved: the value a saved config without the field
    # means (the behaviour before the field existed), which may differ from the default a new config gets
    absent_means: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __post_init__(self) -> None:
        for spec in field_specs(type(self)):
            value = getattr(self, spec.name)
            try:
                conformed = _conform(value, spec.hint, spec.rules)
            except _Invalid as err:
                raise GenlabError(f"{self._label(spec.name)}={_show(value)}: {err}") from None
            if conformed is not value:
                object.__setattr__(self, spec.name, conformed)

    @classmethod
    def _label(cls, name: str) -> str:
        return f"{cls.section}.{name}" if cls.section else name


@dataclass(frozen=True)
class ModelConfig(Checked):
    """Fields every model has; a family subclasses it (a variant subclasses its parent's)."""

    section: ClassVar[str] = "model"

    latent_dim: int = option(16, "width of the latent code z", min=1, max=MAX_LATENT)


# widths of a network's layers, shared by the model configs' declarations
WIDTHS = {"min": 1, "max": MAX_WIDTH}


@dataclass(frozen=True)
class DataConfig(Checked):
    section: ClassVar[str] = "data"

    spec: str = option("mnist5k", "data set: a built-in name (genlab list), toy2d:NAME, folder:PATH, npz:FILE or "
                                  "idx:FILE")
    image_size: int | None = option(None, "resize images to a square of this side (none: as stored)",
                                    min=2, max=MAX_IMAGE_SIZE)
    channels: int | None = option(None, "colour channels of a folder's images, 1 (grey) or 3 (RGB); none: "
                                        "from the images", choices=(1, 3))
    crop: int | None = option(None, "folders: train on random crops of this side drawn fresh each step from the "
                                    "full images (with horizontal flips; val/test: centre crops), never resized",
                              min=2, max=MAX_IMAGE_SIZE)
    seed: int = option(0, "seed of procedural data sets (the split of built-in sets is fixed)", min=0, max=MAX_SEED)
    labels: int | None = option(None, "labels budget: train batches show N balanced labels, the rest y=-1 "
                                      "(none: every label)", min=1)
    label_seed: int = option(0, "which balanced labelled subset (genlab.data.labels)", min=0, max=MAX_SEED)
    label_share: float | None = option(0.5, "share of the batches the labelled items are repeated to (none: "
                                            "their natural share)", min=0, max=1, min_exclusive=True,
                                       max_exclusive=True)
    # size budgets (genlab.data.budget), checked from file headers before anything is read or allocated
    max_pixels: int = option(4096 * 4096, "pixels of one image: each file, and each item once resized", min=1)
    max_side: int = option(8192, "pixels along either side of one image", min=1)
    max_items: int = option(10_000_000, "items in one data set", min=1)
    max_bytes: int = option(4 * 1024**3, "bytes of one array after decompression, and of the float32 tensor "
                                         "made from it", min=1)
    max_classes: int = option(10_000, "labels are whole numbers in [0, max_classes)", min=1)


@dataclass(frozen=True)
class TrainConfig(Checked):
    section: ClassVar[str] = "train"

    batch_size: int = option(128, "the global batch: under torchrun each of N processes takes 1/N",
                             min=1, max=MAX_BATCH)
    lr: float = option(1e-3, "learning rate of every phase that sets none of its own", min=0, min_exclusive=True)
    lr_milestones: tuple[int, ...] = option((), "steps from which every phase's learning rate is multiplied by "
                                                "lr_gamma once more (PyTorch's MultiStepLR); empty: constant",
                                            min=1)
    lr_gamma: float = option(0.1, "factor of the learning rate at each of lr_milestones", min=0, max=1,
                             min_exclusive=True)
    seed: int = option(0, "seed of the initial weights, the batch order and the sampling", min=0, max=MAX_SEED)
    steps: int | None = option(None, "budget: total optimiser steps", min=0)
    epochs: float | None = option(None, "budget: total passes over the train split", min=0)
    time: float | None = option(None, "budget: seconds of wall-clock in this invocation", min=0)
    cpu_time: float | None = option(None, "budget: seconds of this process's CPU time (all threads) in this "
                                          "invocation; waiting for a core does not count", min=0)
    device: str = option("auto", "torch device; auto takes CUDA when present",
                         pattern=(r"auto|cpu|mps|cuda(:[0-9]+)?", "auto, cpu, mps, cuda or cuda:N"))
    log_every: int = option(50, "steps between lines of stats.jsonl", min=1)
    eval_every: int = option(1000, "steps between validation evaluations (0: only at the end)", min=0)
    eval_n: int = option(500, "images per sample metric during training", min=1, max=100_000)
    eval_metrics: tuple[str, ...] | None = option(None, "validation metrics (none: the model's own defaults)",
                                                  names=METRICS)
    select_metric: str = option("auto", "metric that picks best.pt: auto = the first of eval_metrics that applies; "
                                        "last = none, no best.pt, the last weights are the run's",
                                choices=("auto", "last"), names=METRICS)
    select_tolerance: float = option(0.0, "best.pt: the latest weights whose selection metric is within this "
                                          "fraction of the best value so far (0: the best alone); for a model that "
                                          "keeps improving in ways the metric does not see, until it gets worse",
                                     min=0, max=10)
    sample_every: int = option(1000, "steps between sample grids in samples/ (0: none)", min=0)
    checkpoint_every: int = option(1000, "steps between checkpoints (0: only at the end)", min=0)
    grad_clip: float | None = option(None, "clip each phase's gradient norm to this (none: no clipping)",
                                     min=0, min_exclusive=True)
    threads: int | None = option(None, "torch CPU threads (none: the fastest measured on real steps, re-checked "
                                       "every 30 s; at most torch.get_num_threads())", min=1, max=MAX_THREADS)
    precision: str = option("fp32", "fp32, bf16 (autocast; fp32 where the device has no fast bf16) or auto",
                            choices=("fp32", "bf16", "auto"))
    compile: bool = option(False, "torch.compile each phase's forward (eager if it fails)")
    memory_format: str = option("auto", "auto: channels_last for models with 2-D convolutions",
                                choices=("auto", "contiguous", "channels_last"))
    flush_denormal: bool = option(True, "CPU: treat denormal floats as 0 while training (x86 computes them "
                                        "~100x slower)")
    sync_batchnorm: bool = option(True, "under torchrun with NCCL: BatchNorm -> SyncBatchNorm (gloo has none)")


@dataclass(frozen=True)
class DataInfo(Checked):
    """What a model needs to know about its data to be built."""

    section: ClassVar[str] = "data_info"

    shape: tuple[int, ...] = option(doc="shape of one item: (C, H, W) images, (D,) points",
                                    min=1, max=MAX_ITEM_SIDE, nonempty=True)
    kind: str = option(doc="image or points", choices=("image", "points"))
    num_classes: int | None = option(None, "classes of the labels (none: unlabelled)", min=1, max=MAX_CLASSES)
    class_names: tuple[str, ...] | None = option(None, "a name per class")
    factor_names: tuple[str, ...] | None = option(None, "generative factors of procedural data (shapes)")
    factor_ranges: tuple[tuple[float, float], ...] | None = option(None, "(lo, hi) of each factor")
    factor_periods: tuple[float, ...] | None = option(None, "period of each circular factor that an item's image "
                                                            "determines (0: not circular)", min=0)


@dataclass(frozen=True)
class RunConfig(Checked):
    model: str = option(doc="model name", names=MODELS)
    model_config: ModelConfig = option(doc="the model's own config")
    data: DataConfig = option(doc="the data", default_factory=DataConfig)
    train: TrainConfig = option(doc="the training options", default_factory=TrainConfig)
    data_info: DataInfo | None = option(None, "the data's shape, classes and factors")

    def to_json(self) -> str:
        return json.dumps(to_dict(self), indent=2)


def check_names(config: Any) -> None:
    """Check the fields declared with ``names=REGISTRY`` (and those of nested configs) against their
    registries; call it where the registries are filled (``genlab.models``, ``genlab.evaluation``)."""
    for spec in field_specs(type(config)):
        value = getattr(config, spec.name)
        if dataclasses.is_dataclass(value):
            check_names(value)
        registry: Registry | None = spec.rules.get("names")
        if registry is None or value is None:
            continue
        allowed = tuple(spec.rules.get("choices") or ())
        for name in value if isinstance(value, tuple) else (value,):
            if name in allowed or name in registry:
                continue
            close = difflib.get_close_matches(name, [*allowed, *registry], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise GenlabError(f"{type(config)._label(spec.name)}={_show(value)}: {name!r} is not "
                              f"{_either([*allowed, f'a {registry.kind} name'])}{hint}; the {registry.kind}s: "
                              f"{', '.join(registry)}")


class OptionRow(NamedTuple):
    """One config field as ``--help`` and the docs list it: ``section.name``, its type (or choices), value, doc
    and rules (a range, the registry its names come from)."""

    name: str
    kind: str
    value: str
    doc: str
    rules: str


def option_rows(config: Checked) -> list[OptionRow]:
    """Every field of ``config`` with the value it holds (a default-made config: the defaults)."""
    rows = []
    for spec in field_specs(type(config)):
        rules = spec.rules
        kind = _type_text(spec.hint)
        if rules.get("choices") and not rules.get("names"):
            kind = "|".join(map(_show, rules["choices"])) + ("|none" if kind.endswith("|none") else "")
        notes = []
        if rules.get("min") is not None or rules.get("max") is not None:
            notes.append(_range_text(rules))
        if rules.get("names") is not None:
            notes.append(_either([*rules.get("choices", ()), f"a {rules['names'].kind} name"]))
        rows.append(OptionRow(type(config)._label(spec.name), kind, _show(getattr(config, spec.name)),
                              rules.get("doc", ""), "; ".join(notes)))
    return rows


def describe_options(config: Checked) -> list[str]:
    """One line per field: ``section.name  type  value  doc (rules)``, the values those of ``config``."""
    rows = [(r.name, r.kind, r.value, r.doc + (f" ({r.rules})" if r.rules else "")) for r in option_rows(config)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return [f"  {n:<{widths[0]}}  {k:<{widths[1]}}  {v:<{widths[2]}}  {d}" for n, k, v, d in rows]


def to_dict(cfg: Any) -> Any:
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, tuple | list):
        return [to_dict(v) for v in cfg]
    return cfg


def lasting_dict(cfg: Checked) -> dict[str, Any]:
    """``to_dict(cfg)`` without the fields at the value their absence means (``absent_means``): the same dict
    before and after a field is added, so what is derived from it (a codec's identity in its files) lasts."""
    absent = type(cfg).absent_means
    return {k: v for k, v in to_dict(cfg).items() if k not in absent or to_dict(absent[k]) != v}


def from_dict(cls: type, values: Any) -> Any:
    """Rebuild a config dataclass from JSON values (lists become tuples; every field is checked). A field
    the values lack takes its ``absent_means`` value if it has one, else its default."""
    what = (cls.section if issubclass(cls, Checked) else "") or cls.__name__
    if not isinstance(values, dict):
        raise GenlabError(f"{what}: expected an object of fields, got {type(values).__name__}")
    if issubclass(cls, Checked):
        values = {**cls.absent_means, **values}
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise GenlabError(f"{what} has no field(s) {', '.join(sorted(map(str, unknown)))}")
    missing = [f.name for f in fields(cls)
               if f.default is MISSING and f.default_factory is MISSING and f.name not in values]
    if missing:
        raise GenlabError(f"{what} lacks the field(s) {', '.join(missing)}")
    return cls(**values)


_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*$")


def parse_duration(text: str) -> float:
    """'90s', '3m', '1.5h' or a plain number of seconds -> seconds."""
    m = _BUDGET.match(str(text))
    if not m:
        raise GenlabError(f"cannot read the duration {text!r}: use e.g. 90s, 3m or 1h")
    scale = {"s": 1, "sec": 1, None: 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def _parse_value(hint: Any, text: str, where: str) -> Any:
    """The text of a command-line value read as ``hint``; ``where`` names it in the error."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null", ""):
            return None
        return _parse_value(args[0], text, where)
    try:
        if origin is tuple:
            items = [t for t in re.split(r"[,\s]+", text.strip("()[] ")) if t]
            return tuple(_parse_value(args[0], t, where) for t in items)
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
        raise GenlabError(f"{where}: expected {_type_text(hint)}") from None


def apply_overrides(parts: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``--set`` assignments to the named config parts ({"model": cfg, "train": cfg, ...}).

    ``model.latent_dim=16`` names the part; a bare ``latent_dim=16`` is looked up in the parts in
    order and must be unique. Unknown keys are an error that lists the valid ones; a value outside
    its field's rules is an error that says what the field takes.
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
        parts[owners[0]] = replace(cfg, **{name: _parse_value(hint, text.strip(), f"--set {key}={text}")})
    return parts
