"""A run's data: its own data set rebuilt from config.json, or another one checked against it."""

from __future__ import annotations

import logging
from dataclasses import replace

from ..config import DataConfig, DataInfo, RunConfig
from ..data import DataSet, SizeBudget, load_data, loader_options
from ..errors import GenlabError

log = logging.getLogger(__name__)


def load_run_data(cfg: DataConfig) -> DataSet:
    """The data set a ``DataConfig`` names, at its image size, channels and split seed, read within its
    size budget (``data.max_*``)."""
    return load_data(cfg.spec, image_size=cfg.image_size, channels=cfg.channels, seed=cfg.seed, crop=cfg.crop,
                     budget=SizeBudget.of(cfg))


def data_for_run(config: RunConfig, spec: str | None) -> DataSet:
    """The run's own data, or another data set loaded at the model's image size and channels (where its
    loader resizes: built-in sets, folders; said on stderr) and checked for shape."""
    data = load_run_data(config.data if spec is None else _at_model_size(config, spec))
    if config.data_info is not None and tuple(data.shape) != tuple(config.data_info.shape):
        raise GenlabError(f"{spec or config.data.spec} has items of shape {tuple(data.shape)} but the model "
                          f"was trained on {tuple(config.data_info.shape)}")
    return data


def _at_model_size(config: RunConfig, spec: str) -> DataConfig:
    """``config.data`` for another data set, asking its loader for the model's (C, H, W) where it can."""
    cfg = replace(config.data, spec=spec)
    info = config.data_info
    if info is None or info.kind != "image" or info.shape[1] != info.shape[2]:
        return cfg
    c, size = info.shape[0], info.shape[1]
    takes = loader_options(spec)
    fitted = replace(cfg, image_size=size if "image_size" in takes else cfg.image_size,
                     channels=c if "channels" in takes else cfg.channels)
    if fitted != cfg:
        log.info("%s: images read at %dx%d with %d channel(s), the model's", spec, size, size, c)
    return fitted


def data_info(data: DataSet) -> DataInfo:
    """What a model is built from: the items' shape and kind, classes, and known generative factors."""
    ranges, periods = data.meta.get("factor_ranges"), data.meta.get("factor_periods")
    names = tuple(data.factor_names) if data.factor_names else None
    return DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes,
                    class_names=tuple(data.class_names) if data.class_names else None,
                    factor_names=names,
                    factor_ranges=tuple(tuple(map(float, ranges[f])) for f in names) if names and ranges else None,
                    factor_periods=tuple(float(periods[f]) for f in names) if names and periods else None)
