"""The one data-set type every loader returns, and the resumable batch loader the trainer uses.

Small sets live in memory as one tensor, so a batch is one indexing op with no per-item Python
work. Large image folders keep a file list instead and are read by DataLoader workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import GenlabError

SPLITS = ("train", "val", "test")


@dataclass
class DataSet:
    """Images (N, C, H, W) float32 in [0, 1], or points (N, D) float32, with optional labels.

    ``splits`` maps "train"/"val"/"test" to index tensors into ``x``. ``factors`` holds the
    generative factors of procedural sets (shapes: shape, scale, rotation, x, y). ``meta``
    carries extras such as the exact mode centres of the 2-D toy sets.
    Streaming sets have ``x=None`` and a ``read`` function that loads images by index.
    """

    name: str
    kind: str  # "image" or "points"
    x: Tensor | None
    y: Tensor | None = None  # (N,) int64 class labels
    splits: dict[str, Tensor] = field(default_factory=dict)
    num_classes: int | None = None
    class_names: list[str] | None = None
    factors: Tensor | None = None  # (N, F) float32
    factor_names: list[str] | None = None
    # procedural sets that can draw any factor vector exactly: factors (N, F) -> items (N, *shape);
    # ``meta["factor_ranges"]`` then gives each factor's (lo, hi) and ``meta["factor_periods"]`` the
    # change of a circular factor after which every item looks the same (0 when not circular)
    render: Callable[[Tensor], Tensor] | None = None
    meta: dict = field(default_factory=dict)
    # streaming only: number of items, item shape, and a reader of a batch of indices
    length: int | None = None
    item_shape: tuple[int, ...] | None = None
    read: Callable[[Tensor], Tensor] | None = None
    read_workers: int | None = None  # DataLoader workers for ``read`` (0: in the training process); None: 2
    # a labels budget (``labels.with_label_budget``): (N,) bool, the labels batches may show;
    # the others arrive as y = -1. None: all. ``train_plan``: the items training batches are drawn
    # from (the train split with its labelled items repeated); None: the train split. Neither is
    # part of the fingerprint: the data and splits are the same.
    label_mask: Tensor | None = None
    train_plan: Tensor | None = None
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.x.shape[0]) if self.x is not None else int(self.length or 0)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one item: (C, H, W) for images, (D,) for points."""
        return tuple(self.x.shape[1:]) if self.x is not None else tuple(self.item_shape or ())

    @property
    def in_memory(self) -> bool:
        return self.x is not None

    @property
    def labelled(self) -> bool:
        return self.y is not None

    def images(self, index: Tensor) -> Tensor:
        """Items at ``index`` as one tensor (N, *shape)."""
        return self.x[index] if self.x is not None else self.read(index)

    def indices(self, split: str) -> Tensor:
        if split == "all":
            return torch.arange(len(self))
        return self.splits[split]

    def tensors(self, split: str, limit: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor | None]:
        """(x, y) of a split; at most ``limit`` items, a fixed random subset when it is cut."""
        idx = self.indices(split)
        if limit is not None and len(idx) > limit:
            g = torch.Generator().manual_seed(seed)
            idx = idx[torch.randperm(len(idx), generator=g)[:limit]].sort().values
        y = self.y[idx] if self.y is not None else None
        return self.images(idx), y

    def fingerprint(self) -> str:
        """A content hash (data, labels, splits): the key for cached feature networks.

        Computed once per DataSet (hashing mnist5k takes tens of ms and evaluation asks often);
        a loaded set's tensors are not modified afterwards.
        """
        if self._fingerprint is None:
            self._fingerprint = self._hash()
        return self._fingerprint

    def _hash(self) -> str:
        h = hashlib.sha256(self.name.encode())
        for t in (self.x, self.y, *(self.splits[s] for s in sorted(self.splits))):
            if t is not None:
                h.update(str(tuple(t.shape)).encode())
                h.update(t.contiguous().numpy().tobytes())
        if self.x is None:
            h.update(repr(self.meta.get("files", [])).encode())
        return h.hexdigest()[:16]


def batch_dict(data: DataSet, index: Tensor) -> dict[str, Tensor]:
    """The trainer's batch: {"x": (B, ...)} plus "y" (B,) and "factors" (B, F) when known.

    Under a labels budget, "y" is -1 for every example whose label is hidden.
    """
    batch = {"x": data.images(index)}
    if data.y is not None:
        y = data.y[index]
        batch["y"] = y if data.label_mask is None else torch.where(data.label_mask[index], y, -1)
    if data.factors is not None:
        batch["factors"] = data.factors[index]
    return batch


class _IndexBatches(torch.utils.data.Dataset):
    """Streaming helper: item i of this dataset is the i-th batch of a precomputed index plan."""

    def __init__(self, data: DataSet, plan: list[Tensor]):
        self.data, self.plan = data, plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return batch_dict(self.data, self.plan[i])


class Loader:
    """Endless shuffled batches of one split, resumable exactly from ``state_dict()``.

    Each epoch is one permutation drawn from the loader's own generator; the state is the
    generator state at the start of the epoch plus the position inside it, so a resumed run sees
    the very same batches. ``batch_size`` is the global batch: with ``world_size > 1`` (distributed
    training) global batch i of the permutation is cut into ``world_size`` equal slices and rank r
    takes slice r, so the items of a step, the epoch length and the state do not depend on the
    number of processes (a run saved by 2 ranks resumes on 1 and vice versa). Streaming sets read
    batches with DataLoader workers.
    """

    def __init__(self, data: DataSet, split: str = "train", *, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, workers: int = 2):
        self.data = data
        self.index = data.train_plan if split == "train" and data.train_plan is not None else data.indices(split)
        self.rank, self.world_size = rank, world_size
        self.workers = workers if data.read_workers is None else data.read_workers
        if batch_size % world_size:
            raise GenlabError(f"batch size {batch_size} must be a multiple of the {world_size} processes")
        # the global batch, at most the split, and a multiple of the number of processes
        self.batch_size = min(batch_size, len(self.index)) // world_size * world_size
        if self.batch_size < 1:
            raise ValueError(f"split {split!r} of {data.name} has {len(self.index)} items: too few")
        self.rank_batch_size = self.batch_size // world_size  # this process's share of each batch
        self.steps_per_epoch = len(self.index) // self.batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.position = 0, 0
        self._epoch_start_state = self.generator.get_state()

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "generator": self._epoch_start_state}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._epoch_start_state = state["generator"]

    def _epoch_plan(self) -> list[Tensor]:
        self.generator.set_state(self._epoch_start_state)
        perm = self.index[torch.randperm(len(self.index), generator=self.generator)]
        b, start = self.batch_size, self.rank * self.rank_batch_size
        return [perm[i * b + start:i * b + start + self.rank_batch_size] for i in range(self.steps_per_epoch)]

    def _batches(self, plan: list[Tensor]) -> Iterator[dict[str, Tensor]]:
        todo = plan[self.position:]
        if self.data.in_memory:
            yield from (batch_dict(self.data, idx) for idx in todo)
        else:
            loader = torch.utils.data.DataLoader(
                _IndexBatches(self.data, todo), batch_size=None, num_workers=self.workers,
                persistent_workers=False)
            try:
                yield from loader
            except GenlabError as err:  # a worker's error arrives wrapped in its traceback: keep one line
                raise GenlabError(str(err).strip().splitlines()[-1].split("GenlabError: ", 1)[-1]) from None

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        while True:
            plan = self._epoch_plan()
            for batch in self._batches(plan):
                self.position += 1
                yield batch
            # the next epoch's permutation comes from where this one left the generator
            self.epoch, self.position = self.epoch + 1, 0
            self._epoch_start_state = self.generator.get_state()
