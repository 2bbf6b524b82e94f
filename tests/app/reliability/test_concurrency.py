"""Many workers, many runs, and a cancel racing a run's completion.

* Four real ``synflow worker`` processes drain twenty queued runs on PostgreSQL: every run is claimed
  exactly once (one ``claimed run`` log line, ``attempts == 1``) and succeeds.
* ``POST /cancel`` raced against a worker finishing a run, many times with random timing, in-process:
  whichever wins, the run ends in one consistent state — cancelled (with no rows written after it
  finished) or succeeded (every step's molecules and metrics), never a mix. Claims under contention
  on both databases are covered in ``tests/app/test_claims.py``; training here is a stand-in that
  drives the real worker callbacks, so the loop can run many times.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.db import Database
from app.core.models import Metric, Molecule, Run
from app.core.settings import Settings
from app.main import create_app
from app.worker import execution as execution_module
from app.worker.execution import RunExecution
from app.worker.process import Worker
from synflow.callbacks import SampledMolecule, TrainingOutcome
from tests.app.reliability.conftest import WorkerProcesses, queue_run, read_run, wait_for

RUNS, WORKERS = 20, 4


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """A long lease: nobody is killed here, and a worker stalled by a loaded machine must not lose
    its run to another (that would be a second claim, which this module asserts never happens)."""
    return Settings(database_url=database_url, data_dir=tmp_path / "data", worker_lease_seconds=30,
                    worker_poll_seconds=0.1, database_retry_seconds=60)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_four_workers_claim_twenty_runs_exactly_once(
    db: Database, worker_processes: WorkerProcesses, tiny_run: Callable[..., dict[str, Any]]
) -> None:
    config = tiny_run(steps=1, batch_size=2)
    run_ids = [queue_run(db, config, f"run-{i}") for i in range(RUNS)]
    worker_processes.start(WORKERS)

    def finished() -> list[Run] | None:
        with db.session() as session:
            runs = session.scalars(select(Run).where(Run.id.in_(run_ids))).all()
        return runs if all(r.status in ("succeeded", "failed", "cancelled") for r in runs) else None

    runs = wait_for(finished, 240, f"{RUNS} runs to finish")
    assert {r.status for r in runs} == {"succeeded"}, [r.error for r in runs if r.error]
    assert [r.attempts for r in runs] == [1] * RUNS
    claims = re.findall(r"worker (\S+) claimed run (\w+)", worker_processes.log_text())
    assert Counter(run for _, run in claims) == Counter(run_ids)  # each run trained by one worker
    assert {run: worker for worker, run in claims} == {r.id: r.worker_id for r in runs}


# -- cancel racing completion -----------------------------------------------------------------
STEPS = 3


def _stand_in_dispatch(db: Database, settings: Settings, execution: RunExecution) -> TrainingOutcome:
    """What ``Trainer.run`` does to its callback, minus the network: per step, molecules, metrics,
    progress (where a cancel is noticed) and a checkpoint, with ``should_stop`` asked before each
    step and before each checkpoint."""
    execution.on_step(0, STEPS, {})
    for step in range(1, STEPS + 1):
        if execution.should_stop():
            return TrainingOutcome("stopped", step - 1, {})
        execution.on_samples([SampledMolecule(smiles="C" * step, reward=0.1 * step, step=step)])
        execution.on_metrics(step, {"loss": 1.0 / step})
        execution.on_step(step, STEPS, {})
        if execution.should_stop():
            return TrainingOutcome("stopped", step, {})
        execution.on_checkpoint(step, Path("last.pt"))
    return TrainingOutcome("completed", STEPS, {})


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db)) as test_client:
        yield test_client


def _assert_consistent(db: Database, run_id: str, cancel_status: int) -> str:
    with db.session() as session:
        run = session.get(Run, run_id)
        metric_steps = sorted(session.scalars(select(Metric.step).where(Metric.run_id == run_id)))
        latest_metric = session.scalar(select(func.max(Metric.created_at)).where(Metric.run_id == run_id))
        molecules = session.execute(
            select(Molecule.step, Molecule.first_seen).where(Molecule.run_id == run_id)
        ).all()
    state = (run.status, run.step, run.checkpoint_step, metric_steps, len(molecules), cancel_status)
    assert run.status in ("cancelled", "succeeded"), state
    assert run.finished_at is not None and run.lease_expires_at is None, state
    assert cancel_status in (202, 409), state
    if cancel_status == 409:  # the run had already finished: the cancel changed nothing
        assert run.status == "succeeded", state
    if run.status == "succeeded":
        assert run.step == STEPS and run.checkpoint_step == STEPS, state
        assert metric_steps == list(range(1, STEPS + 1)) and len(molecules) == STEPS, state
    else:
        assert run.step <= STEPS and (run.checkpoint_step or 0) <= run.step, state
        assert metric_steps == list(range(1, run.step + 1)), state
        assert sorted(s for s, _ in molecules) == metric_steps, state
    # Nothing was written after the run finished.
    assert all(seen <= run.finished_at for _, seen in molecules), state
    assert latest_metric is None or latest_metric <= run.finished_at, state
    return run.status


def test_cancel_racing_completion_ends_in_one_consistent_state(
    client: TestClient, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    tiny_run: Callable[..., dict[str, Any]],
) -> None:
    monkeypatch.setattr(execution_module, "_dispatch", _stand_in_dispatch)
    config = tiny_run(steps=STEPS)
    rng = random.Random(8)
    outcomes: Counter[str] = Counter()
    lifetime = 0.03  # how long a run takes from claim to finish here; measured as we go
    for _ in range(30):
        run_id = queue_run(db, config)
        worker = Worker(db, settings)
        go = threading.Barrier(2)
        response: dict[str, int] = {}

        def cancel(run_id: str, go: threading.Barrier, delay: float, response: dict[str, int]) -> None:
            go.wait()
            threading.Event().wait(delay)  # a random point of the run's life: queued … finished
            response["status"] = client.post(f"/api/v1/runs/{run_id}/cancel").status_code

        delay = rng.uniform(0, 1.2 * lifetime)  # mostly mid-run, often right at the finish
        canceller = threading.Thread(target=cancel, args=(run_id, go, delay, response))
        canceller.start()
        go.wait()
        started = time.monotonic()
        worker.run_once()
        lifetime = max(0.005, time.monotonic() - started) if read_run(db, run_id).attempts else lifetime
        canceller.join(30)
        status = _assert_consistent(db, run_id, response["status"])
        outcomes[f"{status}/{response['status']}"] += 1
        assert read_run(db, run_id).status == status  # and it stays that way
    # The race was really run: both outcomes occurred.
    assert outcomes["cancelled/202"] and outcomes["succeeded/409"] + outcomes["succeeded/202"], outcomes


def test_cancel_of_a_queued_run_that_a_worker_claims_meanwhile(
    client: TestClient, db: Database, settings: Settings, tiny_run: Callable[..., dict[str, Any]]
) -> None:
    """The narrowest window, made certain: the worker's claim commits between the API reading the
    run as queued and writing the cancel. The cancel must reach the worker (which stops and records
    ``cancelled``), not overwrite the claim behind its back."""
    from sqlalchemy import event

    from app.runs.lifecycle import claim_run
    from app.worker.execution import RunExecution

    run_id = queue_run(db, tiny_run(steps=STEPS))
    claimed: list[str | None] = []

    def claim_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE RUNS") and not claimed:
            claimed.append(None)  # before claiming: the claim's own UPDATE must not recurse
            claimed[0] = claim_run(db, "racer", settings.worker_lease_seconds)

    event.listen(db.engine, "before_cursor_execute", claim_first)
    try:
        response = client.post(f"/api/v1/runs/{run_id}/cancel")
    finally:
        event.remove(db.engine, "before_cursor_execute", claim_first)
    assert claimed == [run_id]
    assert response.status_code == 202, response.text
    run = read_run(db, run_id)
    assert (run.status, run.worker_id, run.cancel_requested) == ("running", "racer", True)
    execution = RunExecution(db, settings, run_id, "racer", threading.Event())
    execution.renew()
    assert execution.cancelled.is_set() and not execution.lost.is_set()
    execution.record(TrainingOutcome("stopped", 0, {}))
    run = read_run(db, run_id)
    assert run.status == "cancelled" and run.finished_at is not None and run.lease_expires_at is None
