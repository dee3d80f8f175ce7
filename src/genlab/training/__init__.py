"""Training: the model-agnostic trainer (run folders and checkpoints are ``genlab.runs``)."""

from .trainer import Trainer, TrainResult, resolve_device

__all__ = ["TrainResult", "Trainer", "resolve_device"]
