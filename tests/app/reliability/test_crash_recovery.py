"""SIGKILL the worker training a run, several times at random steps; the run still ends as if nothing
had happened.

Real ``synflow worker`` processes on SQLite and PostgreSQL. Two runs with the same config and seed
are queued: the reference is trained by a worker nobody touches, the other one's owner is killed
(``kill -9``) at random points; a standby worker claims it once the lease expires and resumes from the
last checkpoint, and a fresh standby is started after each kill. At the end both runs must hold the
same molecules (same SMILES, step, reward, scores, route, count), the same metric rows, and
bit-identical final checkpoints (model, EMA model, optimiser, replay, RNG states).
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy import func, select

from app.core.db import Database
from app.core.models import Metric, Molecule
from app.core.settings import Settings
from tests.app.reliability.conftest import WorkerProcesses, pid_of, queue_run, read_run, wait_for

STEPS = 20
KILLS = {"sqlite": 3, "postgresql": 3}


def _molecules(db: Database, run_id: str) -> dict[str, tuple[Any, ...]]:
    with db.session() as session:
        rows = session.execute(
            select(Molecule.smiles, Molecule.step, Molecule.last_step, Molecule.reward, Molecule.scores,
                   Molecule.route, Molecule.times_sampled, Molecule.inchikey).where(Molecule.run_id == run_id)
        ).all()
        distinct = session.scalar(
            select(func.count(func.distinct(Molecule.smiles))).where(Molecule.run_id == run_id)
        )
    assert distinct == len(rows), "a molecule was stored twice"
    return {row[0]: tuple(row[1:]) for row in rows}


def _metrics(db: Database, run_id: str) -> dict[tuple[str, int], float | None]:
    with db.session() as session:
        query = select(Metric.name, Metric.step, Metric.value).where(Metric.run_id == run_id)
        rows = session.execute(query).all()
    keyed = {(name, step): value for name, step, value in rows}
    assert len(keyed) == len(rows), "a metric step was stored twice"
    return keyed


def _assert_same_state(a: Any, b: Any, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), where
    elif dataclasses.is_dataclass(a):  # replayed trajectories
        assert type(a) is type(b), where
        fields = [f.name for f in dataclasses.fields(a)]
        _assert_same_state([getattr(a, f) for f in fields], [getattr(b, f) for f in fields], where)
    else:
        assert a == b, where


def _kill_owner_at(db: Database, run_id: str, min_step: int, rng: random.Random,
                   workers: WorkerProcesses) -> int:
    """Wait until the run's current owner reaches ``min_step``, let a random part of a step pass, and
    SIGKILL the owner. The owner is frozen (SIGSTOP) first and the row read again, so the kill is
    known to land while that worker still trains the run, never after it has finished it."""
    def owner_at_step() -> str | None:
        run = read_run(db, run_id)
        assert run.status == "running" or run.step < STEPS, f"run ended before the kill: {run.status}"
        return run.worker_id if run.status == "running" and run.step >= min_step else None

    owner = wait_for(owner_at_step, 120, f"the run to reach step {min_step}")
    time.sleep(rng.uniform(0.0, 0.2))  # land anywhere in the step: sampling, writing, checkpointing
    pid = pid_of(owner)
    os.kill(pid, signal.SIGSTOP)
    run = read_run(db, run_id)
    assert run.status == "running" and run.worker_id == owner and run.step < STEPS, (
        f"the kill aimed at step {min_step} came too late: the run is {run.status} at step {run.step}"
    )
    workers.kill(pid)
    return pid


def test_sigkilled_workers_lose_nothing_and_the_model_is_bit_identical(
    database_url: str, db: Database, settings: Settings, worker_processes: WorkerProcesses,
    tiny_run: Callable[..., dict[str, Any]], request: pytest.FixtureRequest,
) -> None:
    dialect = db.dialect
    kills = KILLS["postgresql" if dialect == "postgresql" else "sqlite"]
    rng = random.Random(f"crash-{dialect}")
    # Every kind of state a resume must restore is in use: torch sampling, the numpy generator
    # (block subsampling, ε-exploration, replay draws), the replay buffer, Adam, the EMA model.
    config = tiny_run(steps=STEPS, checkpoint_every=2, exploration=0.2, ema=0.9,
                      environment={"blocks_per_template": 2}, replay={"fraction": 0.25, "warmup": 4})
    reference = queue_run(db, config, "reference")
    worker_processes.start(1)
    wait_for(lambda: read_run(db, reference).status == "running", 120, "a worker to claim the reference")
    crashed = queue_run(db, config, "crashed")
    worker_processes.start(2)  # one to train it, one standby for the first takeover

    # at least ten steps after each target: a kill must land before the run ends, and a tiny step
    # takes tens of milliseconds on an idle machine (three steps were too few there)
    targets = sorted(rng.sample(range(1, STEPS - 10), kills))
    for target in targets:
        dead = _kill_owner_at(db, crashed, target, rng, worker_processes)
        worker_processes.start(1)  # the next standby warms up while the takeover happens

        def taken_over(dead: int = dead) -> bool:
            run = read_run(db, crashed)
            assert run.status == "running", f"the killed run became {run.status}: {run.error}"
            return pid_of(run.worker_id) != dead

        wait_for(taken_over, 120, "another worker to take the run over")

    run = wait_for(lambda: (r := read_run(db, crashed)).status in ("succeeded", "failed") and r, 180,
                   "the crashed run to finish")
    ref = wait_for(lambda: (r := read_run(db, reference)).status in ("succeeded", "failed") and r, 180,
                   "the reference run to finish")
    assert run.status == "succeeded", run.error
    assert ref.status == "succeeded" and ref.attempts == 1, ref.error
    assert run.attempts == kills + 1 and run.step == STEPS and run.checkpoint_step == STEPS

    # Nothing lost, nothing twice: the same rows as the uninterrupted run.
    molecules = _molecules(db, crashed)
    assert molecules and molecules == _molecules(db, reference)
    # Every metric step present once, with the uninterrupted run's values.
    metrics = _metrics(db, crashed)
    assert {step for _, step in metrics} == set(range(1, STEPS + 1))
    assert metrics == _metrics(db, reference)

    # Bit-identical final state (CPU): parameters, EMA copy, Adam moments, replay, RNG states.
    final = torch.load(Path(run.checkpoint_path), map_location="cpu", weights_only=False)
    expected = torch.load(Path(ref.checkpoint_path), map_location="cpu", weights_only=False)
    assert final["step"] == expected["step"] == STEPS
    for part in ("model", "sampling_model", "optimizer", "scheduler", "replay", "metrics", "rng"):
        _assert_same_state(final[part], expected[part], part)
    # The kills really landed mid-run and were recovered from checkpoints.
    assert worker_processes.log_text().count(f"claimed run {crashed}") == kills + 1


def test_a_run_resumed_on_another_thread_count_stays_bit_identical(
    tmp_path: Path, tiny_run: Callable[..., dict[str, Any]]
) -> None:
    """CPU kernels split sums across threads (float addition is not associative), so 1 and 2 threads
    give different parameters after a few steps of this very config; the checkpoint records the
    thread count and a resume continues on it, whatever the new worker's default."""
    from synflow.config import parse_run_config
    from synflow.trainer import Trainer

    config = parse_run_config(tiny_run(steps=4, checkpoint_every=2))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        uninterrupted = Trainer(config)
        uninterrupted.run()
        first = Trainer(config, checkpoint_dir=tmp_path)
        first.run(steps=2)
        torch.set_num_threads(2)  # another worker, another default
        resumed = Trainer(config, checkpoint_dir=tmp_path)
        resumed.load_checkpoint(tmp_path / "last.pt")
        assert torch.get_num_threads() == 1
        resumed.run()
    finally:
        torch.set_num_threads(threads)
    final, expected = resumed.state_dict(), uninterrupted.state_dict()
    for part in ("model", "sampling_model", "optimizer", "replay", "rng"):
        _assert_same_state(final[part], expected[part], part)
