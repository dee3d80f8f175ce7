"""Checkpoints written atomically and read without unpickling anything a user could hand us.

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over the
old file: a kill at any moment leaves either the old checkpoint or the new one, never half of one.
Reading uses ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers.
A full disk is a ``DiskFull`` error (one line, the old file kept); the temporary file of a write
that was killed (``.checkpoint.pt.XXXXXXXX.tmp``) is removed by ``remove_partial_writes``.
"""

from __future__ import annotations

import errno
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import DiskFull, GenlabError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as err:
        _raise_if_disk_full(err, path, len(payload))
        raise
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a run folder is for sharing
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            _raise_if_disk_full(err, path, len(payload))
        raise


def disk_full(err: OSError) -> bool:
    """No space left on the device, or over quota."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


def _raise_if_disk_full(err: OSError, path: Path, size: int) -> None:
    if disk_full(err) and not isinstance(err, DiskFull):
        raise DiskFull(f"the disk is full: could not write {path} ({size / 2**20:.1f} MB; "
                       f"{os.strerror(err.errno)})") from None


def remove_partial_writes(path: Path) -> list[Path]:
    """Delete the temporary files that writes of ``path`` killed mid-way left beside it (mkstemp's
    ``.NAME.XXXXXXXX.tmp``); the removed paths."""
    path = Path(path)
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"[a-z0-9_]{8}\.tmp")
    if not path.parent.is_dir():
        return []
    removed = []
    for leftover in path.parent.iterdir():
        if pattern.fullmatch(leftover.name) and leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialise to memory first, then write atomically (temp file + fsync + rename)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt, truncated, or not a checkpoint at all
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GenlabError(f"checkpoint {path} is corrupt or not a genlab checkpoint ({first[:120]})") from None
