"""One claimed run: callbacks that write results and renew the lease, and the recorded outcome."""

from __future__ import annotations

import logging
import threading
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.chem.parsing import inchikey
from app.core.db import Database, is_transient
from app.core.models import Run, utcnow
from app.core.settings import Settings
from app.runs import training
from app.runs.store import MoleculeRecord, write_metrics, write_molecules

log = logging.getLogger("synflow.worker")


class StopRequested(Exception):
    pass


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
