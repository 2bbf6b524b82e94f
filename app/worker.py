"""Background workers: claim a queued (or lease-expired) run atomically, train it under a lease.

The claim is one ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING id``: on
PostgreSQL concurrent workers skip each other's locked rows, on SQLite writes are serialised. Every
step renews the lease and reads the cancel flag, so cancel takes effect within one step; a
heartbeat thread keeps the lease alive through long steps and start-up. A worker that dies stops
heartbeating; once its lease expires any worker claims the run again and resumes from the last
checkpoint. Many workers on many machines sharing one PostgreSQL is the scale-out path.

Every write a running job makes is idempotent (upserts, conditional updates) and retried through
transient database errors (a PostgreSQL restart, SQLite's ``database is locked``) for
``database_retry_seconds``: training pauses while the database is away and carries on after; a
database outage never marks a run failed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app import training
from app.chem import inchikey
from app.db import Database, is_transient
from app.models import Run, utcnow
from app.settings import Settings
from app.store import MoleculeRecord, write_metrics, write_molecules

log = logging.getLogger("synflow.worker")
MAX_ATTEMPTS = 5


class LeaseLost(RuntimeError):
    """Another worker owns the run now (this one stalled past its lease)."""


class StopRequested(Exception):
    pass


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _claimable(now: Any) -> Any:
    expired = and_(Run.status == "running", Run.lease_expires_at < now)
    return or_(Run.status == "queued", expired)


def claim_run(db: Database, worker_id: str, lease_seconds: float) -> str | None:
    """Atomically take the oldest queued or lease-expired run; returns its id or None."""
    now = utcnow()
    pick = (
        select(Run.id)
        .where(_claimable(now), Run.attempts < MAX_ATTEMPTS)
        .order_by(Run.created_at, Run.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(Run)
        .where(Run.id == pick, _claimable(now))
        .values(
            status="running", worker_id=worker_id, heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds), attempts=Run.attempts + 1,
            started_at=utcnow(), updated_at=now,
        )
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        return session.execute(stmt).scalar_one_or_none()


def fail_exhausted(db: Database) -> int:
    """Runs whose lease expired ``MAX_ATTEMPTS`` times are failed instead of retried forever."""
    now = utcnow()
    stmt = (
        update(Run)
        .where(_claimable(now), Run.status == "running", Run.attempts >= MAX_ATTEMPTS)
        .values(status="failed", finished_at=now, lease_expires_at=None,
                error=f"worker lost {MAX_ATTEMPTS} times (crash or out of memory?)")
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        return session.execute(stmt).rowcount


class RunExecution:
    """One claimed run: the callbacks that write results and renew the lease."""

    def __init__(self, db: Database, settings: Settings, run_id: str, worker_id: str,
                 shutdown: threading.Event) -> None:
        self.db, self.settings, self.run_id, self.worker_id = db, settings, run_id, worker_id
        self.shutdown = shutdown
        self.cancelled = threading.Event()
        self.lost = threading.Event()

    def _write(self, work: Any, what: str, retry: bool = True) -> Any:
        patience = self.settings.database_retry_seconds if retry else 0.0
        return self.db.retrying(work, patience, f"run {self.run_id}: {what}")

    # Lease ---------------------------------------------------------------------------------
    def renew(self, retry: bool = True, **values: Any) -> None:
        """Extend the lease (and store ``values``); notes cancel requests and lost leases."""

        def work(session: Session) -> Any:
            now = utcnow()
            stmt = (
                update(Run)
                .where(Run.id == self.run_id, Run.worker_id == self.worker_id, Run.status == "running")
                .values(heartbeat_at=now, updated_at=now,
                        lease_expires_at=now + timedelta(seconds=self.settings.worker_lease_seconds),
                        **values)
                .returning(Run.cancel_requested)
                .execution_options(synchronize_session=False)
            )
            return session.execute(stmt).first()

        row = self._write(work, "lease renewal", retry)
        if row is None:
            self.lost.set()
        elif row[0]:
            self.cancelled.set()

    def heartbeat_loop(self, done: threading.Event) -> None:
        interval = max(0.2, self.settings.worker_lease_seconds / 3)
        while not done.wait(interval):
            try:
                self.renew(retry=False)  # the next beat is the retry
            except Exception:  # a transient database error must not kill the heartbeat
                log.exception("heartbeat failed for run %s", self.run_id)

    # Callbacks -----------------------------------------------------------------------------
    def on_molecules(self, records: list[MoleculeRecord]) -> None:
        records = [r if r.inchikey else _with_inchikey(r) for r in records]
        self._write(lambda session: write_molecules(session, self.run_id, records), "molecules")

    def on_metrics(self, step: int, values: dict[str, float]) -> None:
        self._write(lambda session: write_metrics(session, self.run_id, step, values), "metrics")

    def on_progress(self, step: int, total: int) -> None:
        self.renew(step=step, total_steps=total)

    def on_checkpoint(self, path: Path, step: int) -> None:
        self.renew(checkpoint_path=str(path), checkpoint_step=step)

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set() or self.shutdown.is_set()

    def callbacks(self) -> training.TrainingCallbacks:
        return training.TrainingCallbacks(
            on_molecules=self.on_molecules, on_metrics=self.on_metrics, on_progress=self.on_progress,
            on_checkpoint=self.on_checkpoint, should_stop=self.should_stop,
        )

    # Outcome -------------------------------------------------------------------------------
    def finish(self, status: str, error: str | None = None, **values: Any) -> None:
        """Record the outcome, only while this worker still owns the running row (never over a
        status someone else set meanwhile)."""
        stmt = (
            update(Run)
            .where(Run.id == self.run_id, Run.worker_id == self.worker_id, Run.status == "running")
            .values(status=status, error=error, finished_at=utcnow() if status != "queued" else None,
                    lease_expires_at=None, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        self._write(lambda session: session.execute(stmt), f"finish as {status}")

    def outcome_after_return(self) -> None:
        if self.lost.is_set():
            log.warning("run %s: lease lost; leaving it to its new owner", self.run_id)
        elif self.cancelled.is_set():
            self.finish("cancelled")
        elif self.shutdown.is_set():
            # Hand the run back: any worker resumes it from the last checkpoint.
            self.finish("queued", worker_id=None, attempts=Run.attempts - 1)
        else:
            self.finish("succeeded", step=Run.total_steps)


def _with_inchikey(record: MoleculeRecord) -> MoleculeRecord:
    from dataclasses import replace

    return replace(record, inchikey=inchikey(record.smiles))


def execute_run(db: Database, settings: Settings, run_id: str, worker_id: str,
                shutdown: threading.Event) -> None:
    """Run a claimed job to its end, recording the outcome on the row."""
    execution = RunExecution(db, settings, run_id, worker_id, shutdown)
    done = threading.Event()
    beat = threading.Thread(target=execution.heartbeat_loop, args=(done,), daemon=True)
    beat.start()
    try:
        _dispatch(db, settings, execution)
        execution.outcome_after_return()
    except Exception as error:
        if is_transient(error):  # the database stayed away past the retries: the lease expires
            log.exception("run %s: database unavailable; leaving the run to its lease", run_id)
        else:
            _record_failure(execution, error)
    finally:
        done.set()
        beat.join(timeout=5)


def _record_failure(execution: RunExecution, error: Exception) -> None:
    log.exception("run %s failed", execution.run_id)
    message = f"{type(error).__name__}: {error}"
    tail = "".join(traceback.format_exception(error)[-3:])
    if not execution.lost.is_set():
        execution.finish("failed", error=f"{message}\n{tail}"[:4000])


def _dispatch(db: Database, settings: Settings, execution: RunExecution) -> None:
    with db.session() as session:
        run = session.get(Run, execution.run_id)
        kind, config, parent_id = run.kind, dict(run.config), run.parent_id
        recorded = run.checkpoint_path is not None
    run_dir = settings.checkpoint_root() / execution.run_id
    # A worker killed between writing a checkpoint and recording it leaves a newer file than the
    # row says: the run's own folder is the truth.
    resume = recorded or (run_dir / training.CHECKPOINT_NAME).exists()
    device = training.resolve_device(config.get("run_config", config))
    execution.renew(device=device)
    run_dir.mkdir(parents=True, exist_ok=True)
    if kind == "sample":
        parent_dir = settings.checkpoint_root() / str(parent_id)
        execution.renew(total_steps=1)
        training.run_sampling(config["run_config"], parent_dir, int(config["count"]), execution.callbacks())
        return
    training.run_training(config, run_dir, resume, execution.callbacks(), settings.checkpoint_every)


class Worker:
    """Claims runs one at a time until ``shutdown`` is set."""

    def __init__(self, db: Database, settings: Settings, worker_id: str | None = None) -> None:
        self.db, self.settings = db, settings
        self.worker_id = worker_id or worker_name()
        self.shutdown = threading.Event()

    def run_once(self) -> str | None:
        fail_exhausted(self.db)
        run_id = claim_run(self.db, self.worker_id, self.settings.worker_lease_seconds)
        if run_id is not None:
            log.info("worker %s claimed run %s", self.worker_id, run_id)
            execute_run(self.db, self.settings, run_id, self.worker_id, self.shutdown)
        return run_id

    def run_forever(self) -> None:
        while not self.shutdown.is_set():
            try:
                claimed = self.run_once()
            except Exception:
                log.exception("worker %s: claim failed", self.worker_id)
                claimed = None
            if claimed is None:
                self.shutdown.wait(self.settings.worker_poll_seconds)


def worker_process_main(settings_json: str, parent_pid: int | None = None) -> None:
    """Entry point of a worker process: ``synflow worker``, or an embedded worker of ``synflow serve``
    (``parent_pid`` set), which stops by itself when its parent is gone, however the parent died."""
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.model_validate_json(settings_json)
    db = Database.from_settings(settings)
    worker = Worker(db, settings)
    training.preload()  # import the trainer stack now, so a claimed run starts training at once
    signal.signal(signal.SIGTERM, lambda *_: worker.shutdown.set())
    signal.signal(signal.SIGINT, lambda *_: worker.shutdown.set())
    if parent_pid is not None:
        threading.Thread(target=_stop_when_orphaned, args=(worker, parent_pid), daemon=True).start()
    try:
        worker.run_forever()
    finally:
        db.dispose()


def _stop_when_orphaned(worker: Worker, parent_pid: int, interval: float = 1.0) -> None:
    while not worker.shutdown.wait(interval):
        if os.getppid() != parent_pid:
            log.warning("worker %s: parent %s is gone; stopping", worker.worker_id, parent_pid)
            worker.shutdown.set()
