"""Database faults: PostgreSQL stopped and started mid-run, and SQLite lock contention.

* A dedicated throwaway PostgreSQL (not the session's shared one: this test stops it) is stopped
  (``pg_ctl stop -m fast``: every connection is terminated) while a real worker process trains;
  the worker retries its writes until the server is back and the run succeeds on its first attempt
  with every step's metrics and molecules; the API (its pool holds connections the restart broke)
  answers again.
* SQLite: API reads hammer the database and API writes (cancels) compete with a worker process that
  trains and a writer thread that upserts large molecule batches; no request gets a 5xx
  (``database is locked`` must never surface).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from app.core.db import Database
from app.core.migrate import upgrade
from app.core.models import Metric, Molecule, Run
from app.core.settings import Settings
from app.main import create_app
from app.runs.lifecycle import MAX_ATTEMPTS
from app.runs.store import write_molecules
from devsupport.postgres import PostgresUnavailable, ThrowawayPostgres
from synflow.callbacks import SampledMolecule
from tests.app.reliability.conftest import WorkerProcesses, WorkerZygote, queue_run, read_run, wait_for

STEPS = 8
CONTENDED_STEPS = 4


@pytest.fixture
def own_postgres() -> Iterator[ThrowawayPostgres]:
    try:
        server = ThrowawayPostgres().start()
    except PostgresUnavailable as error:
        pytest.skip(f"PostgreSQL not available: {error}")
    try:
        yield server
    finally:
        server.stop()


def _metric_steps(db: Database, run_id: str) -> list[int]:
    with db.session() as session:
        return sorted(set(session.scalars(select(Metric.step).where(Metric.run_id == run_id))))


def test_postgres_restart_mid_run_is_ridden_out(
    own_postgres: ThrowawayPostgres, worker_zygote: WorkerZygote, tmp_path: Path,
    tiny_run: Callable[..., dict[str, Any]],
) -> None:
    url = own_postgres.create_database()
    upgrade(url)
    settings = Settings(database_url=url, data_dir=tmp_path / "data", worker_lease_seconds=3,
                        worker_poll_seconds=0.1, database_retry_seconds=120)
    db = Database.from_settings(settings)
    workers = WorkerProcesses(worker_zygote, settings, tmp_path)
    try:
        with TestClient(create_app(settings, db)) as api:
            run_id = queue_run(db, tiny_run(steps=STEPS, checkpoint_every=2))
            workers.start(1)
            wait_for(lambda: read_run(db, run_id).step >= 2, 120, "the run to reach step 2")
            assert api.get(f"/api/v1/runs/{run_id}").status_code == 200  # the API's pool is warm

            # Every connection is cut. ("immediate", a crash, would also lose the last acknowledged
            # commits: the throwaway server runs with synchronous_commit=off for speed.)
            own_postgres.halt("fast")
            wait_for(lambda: "database unavailable" in workers.log_text(), 60,
                     "the worker to notice the outage and retry")
            assert api.get("/readyz").status_code == 503
            outage = api.get(f"/api/v1/runs/{run_id}")  # unavailable, not an internal error
            assert outage.status_code == 503 and outage.headers["retry-after"], outage.text
            own_postgres.resume()

            run = wait_for(lambda: (r := read_run(db, run_id)).status != "running" and r, 120,
                           "the run to finish after the restart")
            assert run.status == "succeeded" and run.error is None, run.error
            assert run.attempts == 1  # the same worker carried on; the run never failed or restarted
            assert _metric_steps(db, run_id) == list(range(1, STEPS + 1))
            with db.session() as session:
                count = session.scalar(select(func.count()).where(Molecule.run_id == run_id))
                distinct = session.scalar(
                    select(func.count(func.distinct(Molecule.smiles))).where(Molecule.run_id == run_id)
                )
            assert count and count == distinct
            # The API reconnects: its pool replaces the connections the crash broke.
            assert api.get("/readyz").status_code == 200
            detail = api.get(f"/api/v1/runs/{run_id}")
            assert detail.status_code == 200 and detail.json()["status"] == "succeeded"
            assert api.get(f"/api/v1/runs/{run_id}/molecules").status_code == 200
            assert workers.alive(workers.pids[0])  # and the worker process is still serving
    finally:
        workers.stop()
        db.dispose()


def _writer(db: Database, run_id: str, stop: threading.Event, batches: list[int]) -> None:
    """Large upserts in long write transactions, as a busy worker makes them."""
    n = 0
    while not stop.is_set():
        records = [SampledMolecule(f"C{'C' * (n % 7)}N{i}", reward=0.5, step=n + 1) for i in range(2000)]
        with db.session() as session:
            write_molecules(session, run_id, records)
        n += 1
        batches.append(n)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_lock_contention_never_surfaces_as_a_5xx(
    db: Database, settings: Settings, worker_processes: WorkerProcesses,
    tiny_run: Callable[..., dict[str, Any]],
) -> None:
    trained = queue_run(db, tiny_run(steps=CONTENDED_STEPS))
    bulk = queue_run(db, tiny_run(steps=1), "bulk")
    with db.session() as session:  # the bulk run is only a target for the writer thread
        session.get_one(Run, bulk).status = "cancelled"
    to_cancel = [queue_run(db, tiny_run(steps=1), f"cancel-{i}") for i in range(60)]  # API writes
    with db.session() as session:  # queued, but past the claim limit: the worker leaves them alone
        session.execute(update(Run).where(Run.id.in_(to_cancel)).values(attempts=MAX_ATTEMPTS))
    worker_processes.start(1)  # claims the oldest queued run: ``trained``
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop, batches = threading.Event(), []  # type: ignore[var-annotated]
    paths = [f"/api/v1/runs/{trained}", f"/api/v1/runs/{trained}/metrics", "/api/v1/runs",
             f"/api/v1/runs/{bulk}/molecules?sort=-reward&limit=50", f"/api/v1/runs/{trained}/molecules"]

    with TestClient(create_app(settings, db)) as api:
        def reader(offset: int) -> None:
            i = offset
            while not stop.is_set():
                code = api.get(paths[i % len(paths)]).status_code
                i += 1
                with lock:
                    statuses[code] += 1

        def canceller() -> None:
            for run_id in to_cancel:
                if stop.is_set():
                    return
                code = api.post(f"/api/v1/runs/{run_id}/cancel").status_code
                with lock:
                    statuses[code] += 1

        threads = [threading.Thread(target=_writer, args=(db, bulk, stop, batches)),
                   threading.Thread(target=canceller)]
        threads += [threading.Thread(target=reader, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        try:
            def done() -> Run | None:
                run = read_run(db, trained)
                finished = run.status not in ("queued", "running")
                return run if finished and len(batches) >= 3 and sum(statuses.values()) >= 100 else None

            run = wait_for(done, 180, "the trained run to finish under contention")
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
    assert run.status == "succeeded", run.error
    assert _metric_steps(db, trained) == list(range(1, CONTENDED_STEPS + 1))
    assert not [code for code in statuses if code >= 500], statuses
    assert set(statuses) <= {200, 202}, statuses
    assert statuses[202] >= 1, statuses  # the API wrote while the worker and the writer thread did


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_raw_driver_error_from_the_bulk_write_path_is_retried(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, tiny_run: Callable[..., dict[str, Any]]
) -> None:
    """``write_molecules`` writes through the raw driver connection, whose errors SQLAlchemy never
    wraps: ``sqlite3.OperationalError('database is locked')`` must be retried like a wrapped one."""
    import sqlite3

    from app.runs.lifecycle import claim_run
    from app.worker import execution as worker_module
    from app.worker.execution import RunExecution

    run_id = queue_run(db, tiny_run())
    assert claim_run(db, "w", settings.worker_lease_seconds) == run_id
    real, calls = worker_module.write_molecules, []

    def locked_once(session: Any, run: str, records: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(session, run, records)

    monkeypatch.setattr(worker_module, "write_molecules", locked_once)
    execution = RunExecution(db, settings, run_id, "w", threading.Event())
    execution.on_samples([SampledMolecule("CCO", 0.4, 1), SampledMolecule("CCN", 0.5, 1)])
    assert len(calls) == 2
    with db.session() as session:
        assert session.scalar(select(func.count()).where(Molecule.run_id == run_id)) == 2
