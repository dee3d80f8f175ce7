"""Batches in which one generative factor varies, rendered exactly (DC-IGN training, Kulkarni et al. 2015).

A model that needs such batches declares a ``FactorBatches`` plan (its ``batch_plan``); the trainer then
draws from a ``FactorLoader`` instead of the shuffled ``Loader``. Each batch:

    base   = the factors of one random train item                      (F,)
    k      = a factor of the plan, uniformly                           (or, with ``free_share``, none)
    values = factor k of B random train items                          (B,)
    batch  = render(base with factor k := values)                      (B, *shape)

so only factor k changes inside the batch, over the values the training data takes; ``"vary"`` (B,)
holds k (an index into ``data.factor_names``), or -1 for a free batch of ordinary train items, and
``"periods"`` (B, F) each item's period of its circular factors when the data knows it; with a plan's
``partner_vary``, ``"partner"`` (B, *shape) and ``"partner_factors"`` (B, F): each item with those factors
taken from another random train item (DC-IGN's swap of free units, ``models.dcign``). The
data set must be able to render any factor vector (``DataSet.render``: ``shapes`` can).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import GenlabError
from .base import DataSet, batch_dict


@dataclass(frozen=True)
class FactorBatches:
    """The plan: which factors take turns varying, and the share of free (ordinary) batches."""

    vary: tuple[str, ...]
    free_share: float = 0.0
    # factors redrawn (from other train items) for each item's "partner": the same item with these
    # factors changed, rendered exactly (B, *shape); empty: no partners
    partner_vary: tuple[str, ...] = ()

    def check(self, data: DataSet, who: str = "this model") -> None:
        """A GenlabError when ``data`` cannot serve this plan (``check_factor_batches``)."""
        check_factor_batches(data, self, who)

    def make_loader(self, data: DataSet, *, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        """A ``FactorLoader`` of this plan (one process only)."""
        if world_size > 1:
            raise GenlabError("one-factor batches (dcign) train in one process: run without torchrun")
        return FactorLoader(data, self, batch_size=batch_size, seed=seed)


def check_factor_batches(data: DataSet, plan: FactorBatches, who: str = "this model") -> list[int]:
    """The column of each factor of the plan, or a GenlabError saying why the data cannot serve it."""
    if data.render is None or data.factors is None or not data.factor_names:
        raise GenlabError(f"{who} trains on batches in which one factor varies, rendered exactly; "
                          f"data set {data.name} cannot render from factors (shapes can)")
    missing = [f for f in plan.vary if f not in data.factor_names]
    if missing:
        raise GenlabError(f"data set {data.name} has no factor(s) {', '.join(missing)}; "
                          f"its factors are {', '.join(data.factor_names)}")
    if not 0.0 <= plan.free_share <= 1.0:
        raise GenlabError(f"the share of free batches must be in [0, 1], got {plan.free_share}")
    return [data.factor_names.index(f) for f in plan.vary]


def one_factor_factors(base: Tensor, column: int, values: Tensor) -> Tensor:
    """(F,) base factors and (B,) values of one column -> (B, F): the base with that column replaced."""
    out = base.unsqueeze(0).repeat(len(values), 1)  # (B, F)
    out[:, column] = values
    return out


class FactorLoader:
    """Endless one-factor batches of the train split, resumable exactly from ``state_dict()``.

    Duck-types ``Loader`` for the trainer (``steps_per_epoch``, ``epoch``, ``state_dict``); an "epoch"
    is as many batches as the shuffled loader would take for one pass over the train split.
    """

    def __init__(self, data: DataSet, plan: FactorBatches, *, batch_size: int, seed: int = 0):
        self.columns = check_factor_batches(data, plan)
        self.partner_columns = [data.factor_names.index(f) for f in plan.partner_vary]
        self.data, self.plan = data, plan
        self.index = data.indices("train")
        self.batch_size = min(batch_size, len(self.index))
        self.steps_per_epoch = max(1, len(self.index) // self.batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.position = 0, 0
        label = data.meta.get("label_factor")
        self.label_column = data.factor_names.index(label) if label in (data.factor_names or []) else None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.generator.set_state(state["generator"])

    def _pick(self, n: int) -> Tensor:
        return self.index[torch.randint(len(self.index), (n,), generator=self.generator)]

    def next_batch(self) -> dict[str, Tensor]:
        g, b = self.generator, self.batch_size
        if torch.rand((), generator=g).item() < self.plan.free_share:
            batch = batch_dict(self.data, self._pick(b))
            batch["vary"] = torch.full((b,), -1, dtype=torch.long)
            return self._with_item_extras(batch)
        k = self.columns[int(torch.randint(len(self.columns), (), generator=g))]
        base = self.data.factors[self._pick(1)[0]]  # (F,)
        factors = one_factor_factors(base, k, self.data.factors[self._pick(b), k])  # (B, F)
        batch = {"x": self.data.render(factors).float(), "factors": factors,
                 "vary": torch.full((b,), k, dtype=torch.long)}
        if self.label_column is not None:
            batch["y"] = factors[:, self.label_column].round().long()
        return self._with_item_extras(batch)

    def _with_item_extras(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Add "periods" (B, F) when the data knows each item's symmetry (shapes: by its shape), and
        "partner" (B, *shape) when the plan asks for partners."""
        periods = self.data.meta.get("item_periods")
        if periods is not None:
            batch["periods"] = periods(batch["factors"])
        if self.partner_columns:
            other = self.data.factors[self._pick(len(batch["factors"]))]  # (B, F) other items' factors
            partner = batch["factors"].clone()
            partner[:, self.partner_columns] = other[:, self.partner_columns]
            batch["partner"], batch["partner_factors"] = self.data.render(partner).float(), partner
        return batch

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        while True:
            yield self.next_batch()
            self.position += 1
            if self.position == self.steps_per_epoch:
                self.epoch, self.position = self.epoch + 1, 0

