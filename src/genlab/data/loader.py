"""The trainer's loader: shuffled batches of the train split, or the batches a model's plan asks for."""

from __future__ import annotations

from typing import Any, Protocol

from .base import DataSet, Loader


class BatchPlan(Protocol):
    """What a model that trains on special batches declares as its ``batch_plan`` (e.g.
    ``genlab.data.factors.FactorBatches``): a check of the data, and the loader that draws them."""

    def check(self, data: DataSet, who: str = "this model") -> None: ...

    def make_loader(self, data: DataSet, *, batch_size: int, seed: int = 0, rank: int = 0,
                    world_size: int = 1) -> Any: ...


def train_loader(data: DataSet, plan: BatchPlan | None, *, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
    """Shuffled train batches (this rank's slice of each global batch), or the plan's own loader."""
    if plan is None:
        return Loader(data, "train", batch_size=batch_size, seed=seed, rank=rank, world_size=world_size)
    return plan.make_loader(data, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size)
