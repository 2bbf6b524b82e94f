"""Cancel and resume against a live training worker (the real trainer, the bundled library).

The worker is gated at step 2 so the cancel lands at a known point: the run must stop there (within
one step), keep its checkpoint from step 1, and on resume load that checkpoint, replay step 2 and run
to the end without storing any molecule twice. SQLite only: claims and leases are covered on both
databases in test_claims.py, and each trainer start costs tens of seconds on a loaded CPU.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.db import Database
from app.core.models import Molecule
from app.core.settings import Settings
from app.main import create_app
from app.worker.execution import RunExecution
from app.worker.process import Worker
from tests.app.test_end_to_end import TINY_QED_RUN

RUN = {
    **TINY_QED_RUN,
    "name": "cancel-resume",
    "training": {"steps": 4, "batch_size": 4, "checkpoint_every": 1, "log_every": 1, "seed": 3},
}


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    try:
        from reactions.library import default_library

        default_library()
    except (ImportError, OSError) as error:
        pytest.skip(f"the bundled default library is not available: {error}")
    with TestClient(create_app(settings, db)) as test_client:
        yield test_client


def _in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run_once, daemon=True)
    thread.start()
    return thread


def _molecules(db: Database, run_id: str) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(select(Molecule.smiles, Molecule.step).where(Molecule.run_id == run_id)).all()
    assert len(rows) == len({s for s, _ in rows})
    return dict(rows)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cancel_stops_within_a_step_and_resume_continues_from_the_checkpoint(
    client: TestClient, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synflow.trainer import Trainer

    at_step_2, cancel_posted = threading.Event(), threading.Event()
    original_on_step = RunExecution.on_step

    def gated_on_step(self: RunExecution, step: int, total: int, info: dict[str, float]) -> None:
        if step == 2 and not at_step_2.is_set():
            at_step_2.set()
            assert cancel_posted.wait(120)
        original_on_step(self, step, total, info)

    loaded_steps: list[int] = []
    original_load = Trainer.load_checkpoint

    def spy_load(self: Any, path: Any) -> None:
        original_load(self, path)
        loaded_steps.append(self.step)

    monkeypatch.setattr(RunExecution, "on_step", gated_on_step)
    monkeypatch.setattr(Trainer, "load_checkpoint", spy_load)

    run_id = client.post("/api/v1/runs", json=RUN).json()["id"]
    thread = _in_thread(Worker(db, settings))
    assert at_step_2.wait(300), "the worker never reached step 2"
    assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 202
    cancel_posted.set()
    thread.join(120)
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "cancelled" and run["progress"]["step"] == 2, run
    assert run["checkpoint_step"] == 1  # step 2 stopped before its checkpoint
    before = _molecules(db, run_id)
    assert before and max(before.values()) <= 2

    assert client.post(f"/api/v1/runs/{run_id}/resume").status_code == 202
    thread = _in_thread(Worker(db, settings))
    deadline = time.monotonic() + 300
    while client.get(f"/api/v1/runs/{run_id}").json()["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, "resumed run did not finish"
        time.sleep(0.2)
    thread.join(60)
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded" and run["progress"]["step"] == 4, run
    assert loaded_steps == [1]  # resumed from the step-1 checkpoint, not from scratch
    after = _molecules(db, run_id)  # unique SMILES per run, checked inside
    assert all(after[smiles] == step for smiles, step in before.items())  # replayed step 2 changed nothing
    assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 409
