"""Checkpoint files: written atomically, read back on any device.

A checkpoint is one ``torch.save`` of a dict (the trainer decides what goes in). Writing goes to a
temporary file in the same folder, is fsynced, renamed over the old file with ``os.replace`` and the
folder fsynced, so a crash or a full disk at any point leaves the previous checkpoint whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_NAME", "CheckpointWriteError", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_NAME = "last.pt"  # the file a trainer keeps in its checkpoint folder


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, I/O error); the previous one is intact."""

    def __init__(self, path: Path, step: int, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(cause.errno, f"checkpoint at step {step} not written to {path}: {reason}")
        self.path, self.step = path, step


def write_checkpoint(state: dict[str, Any], path: str | Path, step: int) -> None:
    """Write ``state`` atomically; a failed write removes its temporary file and raises
    ``CheckpointWriteError`` naming the path and the step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise CheckpointWriteError(path, step, error) from error
    _fsync_dir(path.parent)


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    # Our own files hold RNG states and replayed trajectories (Python objects), so not weights_only.
    state: dict[str, Any] = torch.load(path, map_location=device, weights_only=False)
    return state


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
