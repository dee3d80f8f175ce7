"""A run's data: its own data set rebuilt from config.json, or another one checked against it."""

from __future__ import annotations

from dataclasses import replace

from ..config import DataConfig, DataInfo, RunConfig
from ..data import DataSet, SizeBudget, load_data
from ..errors import GenlabError


def load_run_data(cfg: DataConfig) -> DataSet:
    """The data set a ``DataConfig`` names, at its image size, channels and split seed, read within its
    size budget (``data.max_*``)."""
    return load_data(cfg.spec, image_size=cfg.image_size, channels=cfg.channels, seed=cfg.seed,
                     budget=SizeBudget.of(cfg))


def data_for_run(config: RunConfig, spec: str | None) -> DataSet:
    """The run's own data, or another data set loaded to the run's image size and checked for shape."""
    data = load_run_data(config.data if spec is None else replace(config.data, spec=spec))
    if config.data_info is not None and tuple(data.shape) != tuple(config.data_info.shape):
        raise GenlabError(f"{spec or config.data.spec} has items of shape {tuple(data.shape)} but the model "
                          f"was trained on {tuple(config.data_info.shape)}")
    return data


def data_info(data: DataSet) -> DataInfo:
    """What a model is built from: the items' shape and kind, classes, and known generative factors."""
    ranges, periods = data.meta.get("factor_ranges"), data.meta.get("factor_periods")
    names = tuple(data.factor_names) if data.factor_names else None
    return DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes,
                    class_names=tuple(data.class_names) if data.class_names else None,
                    factor_names=names,
                    factor_ranges=tuple(tuple(map(float, ranges[f])) for f in names) if names and ranges else None,
                    factor_periods=tuple(float(periods[f]) for f in names) if names and periods else None)
