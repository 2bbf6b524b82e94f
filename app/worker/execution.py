"""One claimed run: the trainer's callback that writes results and renews the lease, and the outcome.

``RunExecution`` is the service's ``TrainerCallback``: scored samples become molecule rows (upserts
that count ``times_sampled``), metrics become metric rows, every step renews the lease and reads the
cancel flag, every checkpoint is recorded on the run; ``should_stop`` is true once a cancel was
requested, the lease moved to another worker or the worker is shutting down. Every write is
idempotent and retried through transient database errors for ``database_retry_seconds``.
"""

from __future__ import annotations

import logging
import threading
import traceback
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.orm import Session

from app.core.db import Database, is_transient
from app.core.models import Run
from app.core.settings import Settings
from app.runs.configs import run_config_of, sampling_config_of
from app.runs.lifecycle import RunStatus, finish, renew_lease
from app.runs.poses import pose_root
from app.runs.store import write_metrics, write_molecules
from synflow.callbacks import SampledMolecule, TrainerCallback, TrainingOutcome
from synflow.checkpoint import CHECKPOINT_NAME
from synflow.config import RunConfig
from synflow.runtime import resolve_device
from synflow.trainer import Trainer

log = logging.getLogger("synflow.worker")


class RunExecution(TrainerCallback):
    """One claimed run, as the trainer's callback."""

    def __init__(
        self, db: Database, settings: Settings, run_id: str, worker_id: str, shutdown: threading.Event
    ) -> None:
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

        def work(session: Session) -> bool | None:
            return renew_lease(
                session, self.run_id, self.worker_id, self.settings.worker_lease_seconds, **values
            )

        cancel_requested = self._write(work, "lease renewal", retry)
        touch_health(self.settings)
        if cancel_requested is None:
            self.lost.set()
        elif cancel_requested:
            self.cancelled.set()

    def heartbeat_loop(self, done: threading.Event) -> None:
        interval = max(0.2, self.settings.worker_lease_seconds / 3)
        while not done.wait(interval):
            try:
                self.renew(retry=False)  # the next beat is the retry
            except Exception:  # a transient database error must not kill the heartbeat
                log.exception("heartbeat failed for run %s", self.run_id)

    # TrainerCallback -----------------------------------------------------------------------
    def on_samples(self, samples: list[SampledMolecule]) -> None:
        # every sample, not only new molecules: the store upserts by SMILES and counts
        # ``times_sampled`` once per sample, idempotently per step (a step written again after a
        # resume is not counted twice)
        self._write(lambda session: write_molecules(session, self.run_id, samples), "molecules")

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._write(lambda session: write_metrics(session, self.run_id, step, metrics), "metrics")

    def on_step(self, step: int, total: int, info: dict[str, float]) -> None:
        self.renew(step=step, total_steps=total)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.renew(checkpoint_path=str(path), checkpoint_step=step)

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set() or self.shutdown.is_set()

    # Outcome -------------------------------------------------------------------------------
    def finish(self, status: RunStatus, error: str | None = None, **values: Any) -> None:
        """Record the outcome while this worker still owns the running row."""
        self._write(
            lambda session: finish(session, self.run_id, self.worker_id, status, error=error, **values),
            f"finish as {status}",
        )

    def record(self, outcome: TrainingOutcome) -> None:
        if self.lost.is_set():
            log.warning("run %s: lease lost; leaving it to its new owner", self.run_id)
        elif self.cancelled.is_set():
            self.finish(RunStatus.CANCELLED)
        elif outcome.reason == "stopped":
            # Shutting down: hand the run back; any worker resumes it from the last checkpoint.
            self.finish(RunStatus.QUEUED, worker_id=None, attempts=Run.attempts - 1)
        elif outcome.reason == "budget_spent":
            self.finish(RunStatus.SUCCEEDED, step=outcome.step, stop_reason=outcome.message)
        else:
            self.finish(RunStatus.SUCCEEDED, step=Run.total_steps)


def touch_health(settings: Settings) -> None:
    """Mark the worker alive and in touch with its database (``worker_health_file``, if set)."""
    if settings.worker_health_file is not None:
        settings.worker_health_file.touch()


def execute_run(
    db: Database, settings: Settings, run_id: str, worker_id: str, shutdown: threading.Event
) -> None:
    """Run a claimed job to its end, recording the outcome on the row."""
    execution = RunExecution(db, settings, run_id, worker_id, shutdown)
    done = threading.Event()
    beat = threading.Thread(target=execution.heartbeat_loop, args=(done,), daemon=True)
    beat.start()
    try:
        execution.record(_dispatch(db, settings, execution))
    except Exception as error:
        if is_transient(error):  # the database stayed away past the retries: the lease expires
            log.exception("run %s: database unavailable; leaving the run to its lease", run_id)
        else:
            _record_failure(execution, error)
    finally:
        done.set()
        beat.join(timeout=5)


def _with_server_defaults(config: RunConfig, settings: Settings) -> RunConfig:
    """What the server supplies to a run that leaves it unset (the stored config is not changed):
    its Ray cluster, a cache under the data directory, so the compatibility index and the
    retro-analysis store are shared by every run on the same library and templates, and the
    directory docking components keep their poses in."""
    training, environment = config.training, config.environment
    if training.executor == "ray" and training.ray_address is None and settings.ray_address:
        training = training.model_copy(update={"ray_address": settings.ray_address})
    if environment.cache_dir is None:
        environment = environment.model_copy(update={"cache_dir": settings.data_dir / "cache"})
    # docked poses under DATA_DIR/poses, where the API serves them from
    reward = config.reward.with_pose_dir(pose_root(settings.data_dir))
    return config.model_copy(update={"training": training, "environment": environment, "reward": reward})


def _record_failure(execution: RunExecution, error: Exception) -> None:
    log.exception("run %s failed", execution.run_id)
    message = f"{type(error).__name__}: {error}"
    tail = "".join(traceback.format_exception(error)[-3:])
    if not execution.lost.is_set():
        execution.finish(RunStatus.FAILED, error=f"{message}\n{tail}"[:4000])


def _dispatch(db: Database, settings: Settings, execution: RunExecution) -> TrainingOutcome:
    with db.session() as session:
        run = session.get(Run, execution.run_id)
        if run is None:
            raise LookupError(f"run {execution.run_id} was deleted")
        kind, parent_id = run.kind, run.parent_id
        sampling = sampling_config_of(run) if kind == "sample" else None
        config = run_config_of(run) if kind == "train" else None
    threads = torch.get_num_threads()  # a resumed checkpoint may set its own; the next run gets ours
    try:
        if sampling is not None:
            checkpoint = settings.checkpoint_root() / str(parent_id) / CHECKPOINT_NAME
            if not checkpoint.exists():
                raise FileNotFoundError(f"no checkpoint at {checkpoint}")
            with Trainer.from_checkpoint(checkpoint, callbacks=[execution]) as trainer:
                execution.renew(device=str(trainer.device))
                return trainer.draw(sampling)
        assert config is not None
        config = _with_server_defaults(config, settings)
        execution.renew(device=str(resolve_device(config.training.device)))
        run_dir = settings.checkpoint_root() / execution.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        with Trainer(config, callbacks=[execution], checkpoint_dir=run_dir) as trainer:
            # The run's own folder is the truth: a worker killed between writing a checkpoint and
            # recording it leaves a newer file than the row says.
            trainer.resume()
            return trainer.run()
    finally:
        torch.set_num_threads(threads)
