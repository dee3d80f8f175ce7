"""Training: the model-agnostic trainer, run folders, checkpoints and logs."""

from .checkpoint import load_checkpoint, save_checkpoint
from .runs import Run, load_model, new_run, open_run
from .trainer import Trainer, TrainResult, resolve_device

__all__ = ["Run", "TrainResult", "Trainer", "load_checkpoint", "load_model", "new_run", "open_run",
           "resolve_device", "save_checkpoint"]
