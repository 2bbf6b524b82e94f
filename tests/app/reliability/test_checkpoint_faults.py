"""A checkpoint that cannot be written (disk full, I/O error) fails the run with a clear error on the
row and leaves the previous checkpoint whole; after the disk is freed the run resumes from it.

The fault is injected where the bytes go to disk: ``torch.save`` writes part of the file and raises
``OSError(ENOSPC)``, or ``os.fsync`` raises ``OSError(EIO)``. The real trainer, the real worker.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from app.core.db import Database
from app.core.settings import Settings
from app.main import create_app
from app.worker.process import Worker
from tests.app.reliability.conftest import queue_run, read_run

FAIL_AT_SAVE = 3  # the third checkpoint write fails: checkpoints 1 and 2 exist before it


def _disk_full(real_save: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == FAIL_AT_SAVE:
            f.write(b"PK\x03\x04 half a checkpoint")  # the disk fills up mid-write
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f, *args, **kwargs)

    return save


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fault", ["disk_full", "fsync_eio"])
def test_failed_checkpoint_write_fails_the_run_and_keeps_the_previous_checkpoint(
    fault: str, db: Database, settings: Settings, tiny_run: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = queue_run(db, tiny_run(steps=4, checkpoint_every=1))
    calls: list[int] = []
    if fault == "disk_full":
        monkeypatch.setattr(torch, "save", _disk_full(torch.save, calls))
        expected = "No space left on device"
    else:
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if not Path(f"/proc/self/fd/{fd}").resolve().name.endswith(".tmp"):
                return real_fsync(fd)  # folders sync fine
            calls.append(1)
            if len(calls) == FAIL_AT_SAVE:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        expected = "Input/output error"

    worker = Worker(db, settings)
    assert worker.run_once() == run_id  # the worker survives the failure
    run = read_run(db, run_id)
    assert run.status == "failed" and run.finished_at is not None
    assert "CheckpointWriteError" in run.error and expected in run.error, run.error
    assert f"checkpoint at step {FAIL_AT_SAVE} not written" in run.error, run.error
    assert run.checkpoint_step == FAIL_AT_SAVE - 1 and run.step == FAIL_AT_SAVE

    # The previous checkpoint is whole and the half-written temporary file is gone.
    folder = settings.checkpoint_root() / run_id
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt"]
    assert torch.load(folder / "last.pt", weights_only=False)["step"] == FAIL_AT_SAVE - 1

    # Space freed: resuming continues from that checkpoint and finishes.
    monkeypatch.undo()
    with TestClient(create_app(settings, db)) as client:
        assert client.post(f"/api/v1/runs/{run_id}/resume").status_code == 202
    assert worker.run_once() == run_id
    run = read_run(db, run_id)
    assert run.status == "succeeded" and run.error is None and run.checkpoint_step == 4, run.error
    assert torch.load(folder / "last.pt", weights_only=False)["step"] == 4
