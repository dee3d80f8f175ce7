"""Run folders (``runs/<id>-<model>-<data>/``): creating and opening them, atomic checkpoints, rebuilding
the run's model and data, reading its logs."""

from .checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from .data import data_for_run, data_info, load_run_data
from .folder import Run, build_model, load_model, new_run, open_run, read_run_config
from .logs import read_jsonl

__all__ = ["Run", "atomic_write_bytes", "build_model", "data_for_run", "data_info", "load_checkpoint", "load_model",
           "load_run_data", "new_run", "open_run", "read_jsonl", "read_run_config", "save_checkpoint"]
