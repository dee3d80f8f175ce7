"""An exponential moving average of a model's weights (Polyak averaging), the weights a run evaluates and keeps
when ``train.ema`` is set.

After every training step, each floating-point parameter and buffer p of the model moves its average a:

    a <- a + (1 - d_t) (p - a),    d_t = min(ema, (1 + t) / (10 + t))   (t: the steps taken so far)

The warm-up d_t (as in TensorFlow's ``ExponentialMovingAverage(num_updates=...)``) lets the average follow the
fast early changes instead of remembering the random initialisation for 1 / (1 - ema) steps. Integer
buffers (BatchNorm's step counter) are copied. Averaging removes much of the step-to-step noise of a
constant learning rate without a schedule, which a run stopped by a time budget cannot plan for: the
measured effect on each family is in docs/speed.md.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn


class WeightAverage:
    """The average of ``model``'s state, in the model's own key order; ``applied()`` swaps it in."""

    def __init__(self, model: nn.Module, decay: float):
        self.model, self.decay = model, decay
        self.updates = 0
        self.average: dict[str, Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def _pairs(self) -> tuple[list[Tensor], list[Tensor], list[tuple[Tensor, Tensor]]]:
        """(averages, current) of the floating-point entries, and (average, current) of the others."""
        floats, current, copies = [], [], []
        for k, v in self.model.state_dict().items():
            a = self.average[k]
            if v.is_floating_point():
                floats.append(a)
                current.append(v.detach())
            else:
                copies.append((a, v))
        return floats, current, copies

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average, after an optimiser step of the model."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        floats, current, copies = self._pairs()
        if floats:
            torch._foreach_lerp_(floats, current, 1.0 - d)
        for a, v in copies:
            a.copy_(v)

    def state_dict(self) -> dict:
        """The averaged model state (a ``model.state_dict()``) and the number of updates."""
        return {"average": self.average, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for k, v in state["average"].items():
            self.average[k].copy_(v)

    def _swap(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """Points the model's parameters and buffers at ``tensors`` (by state-dict key), returns the ones they
        held. The tensors are swapped, not copied into: a checkpoint state taken before (whose tensors alias
        the model's own) keeps the model's own weights."""
        held = {}
        for name, p in self.model.named_parameters():
            held[name], p.data = p.data, tensors[name]
        for name, b in self.model.named_buffers():
            if name in tensors:
                owner, _, attr = name.rpartition(".")
                module = self.model.get_submodule(owner) if owner else self.model
                held[name], module._buffers[attr] = b, tensors[name]
        return held

    @contextmanager
    def applied(self):
        """The model holds the averaged weights inside the block, its own again after it."""
        own = self._swap(self.average)
        try:
            yield self.model
        finally:
            self._swap(own)
