"""Options that change how fast a phase runs, not what it computes: bf16 autocast, torch.compile,
the memory layout and denormal flushing.

bf16 and compile are off by default (a model family may default to ``precision="auto"``: ``gan`` on
images, ``infogan``, ``stackgan``) and fall back to plain fp32 eager execution where they cannot help; the
layout and flushing are on by default where they apply:

* ``train.precision``: "fp32" (the trainer's default); "bf16" runs each phase's forward pass under
  ``torch.autocast(dtype=bfloat16)`` (the backward pass follows the forward's dtypes, the weights
  and optimiser stay fp32) when the device has fast bf16 (a GPU that supports it; a CPU with
  AMX-BF16 or AVX512-BF16), else warns and stays in fp32; "auto" is bf16 where it is fast, silently.
* ``train.memory_format``: "auto" trains a model with 2-D convolutions in the channels-last layout
  (weights and image batches), which the CPU's and GPU's convolution libraries run faster.
* ``train.flush_denormal`` (on by default): while ``fit`` runs, the CPU treats denormal floats
  (|x| < 1.2e-38) as zero, as TensorFlow does by default. x86 cores compute with denormals in
  microcode, ~100x slower, and training makes them: Adam's first moment of a weight whose gradient
  is always 0 (a blank border pixel of MNIST into the first layer) decays by 0.9 a step into that
  range. Measured: the MLP VAE's steps fell from 24k to 19k images per CPU-second after ~400 steps,
  and stayed at 25-26k with flushing. Nothing a model computes depends on numbers that small.
* ``train.compile``: ``torch.compile`` of each phase's forward (through its DDP wrapper when
  distributed). Compilation happens on the first step; if it fails (no C++ compiler, an unsupported
  op) the phase runs eagerly from then on, with one warning.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
from pathlib import Path

import torch

from ..errors import GenlabError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "auto")


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.split(":", 1)[-1].split())


def cpu_description() -> str:
    """This CPU as timings quote it: model name, logical CPUs and its fast-bf16 flags (from /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")),
                platform.processor() or "unknown CPU")
    fast = sorted(_cpu_flags() & {"amx_bf16", "avx512_bf16"})
    return f"{name} ({os.cpu_count()} CPUs; fast bf16: {', '.join(fast) or 'none'})"


def fast_bf16(device: torch.device) -> bool:
    """The device computes bf16 matrix products in hardware (so autocast can pay off)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(_cpu_flags() & {"amx_bf16", "avx512_bf16"})
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` on this device; None: fp32."""
    if precision not in PRECISIONS:
        raise GenlabError(f"train.precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if fast_bf16(device):
        return torch.bfloat16
    if precision == "bf16":
        log.warning("train.precision=bf16: this %s has no fast bf16 arithmetic; training in fp32", device.type)
    return None


def autocast(dtype: torch.dtype | None, device: torch.device):
    """A context for the forward pass: autocast to ``dtype``, or nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def flush_denormals(enabled: bool, device: torch.device):
    """Within the block, this thread (and threads it starts) flush denormal floats to zero on a CPU
    (SSE3's FTZ/DAZ flags; a CPU without them is left as it is). Restores the default (off) after,
    so code outside the training loop computes as everywhere else."""
    if not enabled or device.type != "cpu":
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def channels_last(setting: str, model: torch.nn.Module) -> bool:
    """Whether to train in the channels-last (NHWC) layout: "auto" does for a model with 2-D
    (transposed) convolutions, where oneDNN / cuDNN run them faster (measured here: a DCGAN
    generator's forward and backward 1.5x faster on one CPU thread)."""
    if setting not in MEMORY_FORMATS:
        raise GenlabError(f"train.memory_format={setting!r}: use one of {', '.join(MEMORY_FORMATS)}")
    if setting != "auto":
        return setting == "channels_last"
    return any(isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for m in model.modules())


def to_device(batch: dict, device: torch.device, nhwc: bool) -> dict:
    """The batch on the device; 4-D image tensors in the channels-last layout when ``nhwc``."""
    if not nhwc:
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True, memory_format=torch.channels_last) if v.dim() == 4
            else v.to(device, non_blocking=True) for k, v in batch.items()}


class CompiledOrEager:
    """Calls the compiled function; if the first compiled step fails (compiling, or its backward
    pass: e.g. AOTAutograd has no double backward, which a gradient penalty needs), warns once and
    calls ``eager`` from then on. The trainer redoes that step eagerly: the failure comes before the
    optimiser step, and gradients are zeroed before every backward, so nothing half-done remains."""

    def __init__(self, fn, name: str):
        self.eager, self.name = fn, name
        self.compiled = torch.compile(fn)
        self.proven = False  # one compiled step, forward and backward, went through

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:  # noqa: BLE001  (any backend failure: fall back, say why)
                self.give_up(err)
        return self.eager(*args, **kwargs)

    def give_up(self, err: BaseException) -> None:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        log.warning("torch.compile of phase %r failed (%s); running it eagerly", self.name, first)
        self.compiled = None


def maybe_compile(fn, name: str, enabled: bool):
    return CompiledOrEager(fn, name) if enabled else fn


def can_fall_back(run, err: BaseException) -> bool:
    """A compiled phase's first step failed: switch it to eager (True), or let the error stand."""
    if isinstance(run, CompiledOrEager) and run.compiled is not None and not run.proven:
        run.give_up(err)
        return True
    return False


def proven(run) -> None:
    if isinstance(run, CompiledOrEager) and run.compiled is not None:
        run.proven = True
