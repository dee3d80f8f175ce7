"""Data-parallel training over processes (torchrun): everything that changes with more than one.

    torchrun --nproc_per_node=N -m genlab train MODEL --data ...        # one machine, N processes
    torchrun --nnodes=M --nproc_per_node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT -m genlab train ...

* **Process group**: from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...); NCCL
  when the run's device is a GPU, gloo otherwise. A plain ``genlab train`` starts none.
* **Data**: ``train.batch_size`` is the global batch; each rank takes 1/N of every batch
  (``genlab.data.Loader``), in-memory sets too, so a step sees the same items whatever N is.
* **Random numbers**: rank 0 keeps ``train.seed`` (a 1-process run is unchanged), rank r > 0 a seed
  derived from it, so the ranks draw different noise (z, dropout, binarisation) for their slices.
* **Gradients**: each phase's forward pass (``model.loss(phase, ...)``) runs through its own
  ``DistributedDataParallel`` that holds exactly that phase's parameters (``phase_runners``). A GAN's
  critic phase syncs D (and Q), its generator phase G: two wrappers, never one around both, so DDP
  needs no ``find_unused_parameters`` (a phase that may leave parameters unused says so:
  ``Phase.unused_parameters``). Modules outside every phase (G's moving average) stay outside DDP.
  The wrapper holds parameters only, so DDP broadcasts no buffers: BatchNorm statistics stay per
  rank (rank 0's are saved), and there is no in-place buffer broadcast between two forward passes
  of one backward (a known breakage of BatchNorm critics under DDP on CUDA). Under NCCL, BatchNorm becomes SyncBatchNorm
  (``train.sync_batchnorm``); gloo has no SyncBatchNorm, so on CPU it stays per rank.
* **Records**: rank 0 alone writes logs, pictures and checkpoints; logged scalars are averaged
  over ranks; the decision to stop (time budget, Ctrl-C) is taken by all ranks together.
* **Checkpoints**: the same format as one process's (the model's own state_dict, no ``module.``
  prefixes), plus every rank's RNG state in ``rng_ranks``: N ranks resume exactly on N, and a run
  moves between 1 and N processes (new ranks get fresh seeds).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import GenlabError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; ``World()`` is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        """The one process that writes files, logs and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current() -> World:
    """The initialised process group's view, or a single process when there is none."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                     dist.get_backend())
    return World()


def launched() -> bool:
    """Started by torchrun (or SLURM via torchrun) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def wants_cuda(device: str) -> bool:
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def init_from_env(device: str = "auto", *, timeout_s: float = 1800.0) -> World:
    """Join the process group torchrun describes (NCCL for a GPU run, gloo otherwise); no-op alone."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return current()
    backend = "nccl" if wants_cuda(device) and dist.is_nccl_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    world = current()
    log.info("rank %d of %d (%s)", world.rank, world.size, backend)
    return world


def shutdown() -> None:
    """Wait for every rank, then leave the process group (started by ``init_from_env``).

    DDP wrappers still alive keep the group's C++ object (and gloo's threads) until the interpreter
    is torn down, where destroying them can abort the process (SIGABRT, "terminate called without an
    active exception"); collect them first, while Python is whole."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
        gc.collect()


def device_for(name: str, world: World) -> torch.device:
    """"auto" takes CUDA when present; under torchrun each process takes the GPU of its local rank.
    A device this machine does not have is a GenlabError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GenlabError(f"device {name!r}: use auto, cpu, mps, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenlabError(f"device {name}: CUDA is not available on this machine; use cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise GenlabError(f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GenlabError(f"device {name}: MPS is not available on this machine; use cpu or auto")
    if device.type == "cuda" and device.index is None and world.distributed:
        device = torch.device("cuda", world.local_rank)
    return device


def rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the run's seed; other ranks get a distinct seed derived from (seed, rank)."""
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"genlab-rank:{seed}:{rank}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


# --- collectives (no-ops for one process) ----------------------------------------------------------
def _comm_device(world: World) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if world.backend == "nccl" else torch.device("cpu")


def mean_across(values: dict[str, float], world: World) -> dict[str, float]:
    """Each value averaged over the ranks (every rank must pass the same keys)."""
    if not world.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device(world))
    dist.all_reduce(t)
    return {k: v / world.size for k, v in zip(keys, t.tolist(), strict=True)}


def max_across(value: int, world: World) -> int:
    """The largest of the ranks' values, on every rank: one collective decision (e.g. to stop)."""
    if not world.distributed:
        return value
    t = torch.tensor([float(value)], device=_comm_device(world))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_object(obj, world: World):
    """Rank 0's ``obj`` on every rank (e.g. the run folder rank 0 created)."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rng_states(world: World) -> list[Tensor]:
    """Every rank's CPU RNG state, in rank order (a collective: every rank calls it)."""
    mine = torch.get_rng_state()
    if not world.distributed:
        return [mine]
    states: list = [None] * world.size
    dist.all_gather_object(states, mine)
    return states


def restore_rng(state: dict, world: World, *, seed: int, step: int) -> None:
    """Each rank's own saved RNG state when the number of ranks is unchanged; otherwise rank 0 takes
    the run's stream and the other ranks fresh streams derived from (seed, step, rank)."""
    saved = state.get("rng_ranks") or []
    if len(saved) == world.size:
        torch.set_rng_state(saved[world.rank])
    elif world.rank == 0:
        torch.set_rng_state(state["rng"])
    else:
        torch.manual_seed(rank_seed(seed * 1_000_003 + step, world.rank))


# --- a phase's forward pass, through DDP when distributed -----------------------------------------
class PhaseForward(nn.Module):
    """``model.loss(phase, batch, step=)`` as the forward of a module that owns exactly the phase's
    parameters (the very same tensors), so that DDP syncs those and only those. The model itself is
    kept out of the module tree: its other parameters are not this wrapper's business."""

    def __init__(self, model: nn.Module, phase: str, params: list[nn.Parameter]):
        super().__init__()
        self._model = [model]  # a list, so the model is not registered as a submodule
        self.phase = phase
        self.params = nn.ParameterList(params)

    def forward(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        return self._model[0].loss(self.phase, batch, step=step)


Runner = Callable[[dict[str, Tensor], int], dict[str, Tensor]]


def phase_runners(model: nn.Module, phases: list, world: World, device: torch.device) -> dict[str, Runner]:
    """For each phase, the callable ``(batch, step) -> loss dict``: ``model.loss`` itself for one
    process, a ``DistributedDataParallel(PhaseForward)`` over the phase's parameters for several."""
    runners: dict[str, Runner] = {}
    for phase in phases:
        params = [p for p in phase.parameters() if p.requires_grad]
        if not world.distributed or not params:
            runners[phase.name] = lambda batch, step, name=phase.name: model.loss(name, batch, step=step)
            continue
        runners[phase.name] = nn.parallel.DistributedDataParallel(
            PhaseForward(model, phase.name, params),
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=phase.unused_parameters)
    return runners


def sync_batchnorm(model: nn.Module, world: World, enabled: bool) -> nn.Module:
    """BatchNorm -> SyncBatchNorm under NCCL (the only backend it runs on); unchanged otherwise.
    The parameters are the same tensors and the state_dict keys the same."""
    if not (enabled and world.distributed and world.backend == "nccl"):
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
