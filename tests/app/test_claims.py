"""Atomic claims under concurrency, leases, heartbeats and expiry, on both databases."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

from app.core.db import Database
from app.core.models import Run, utcnow
from app.core.settings import Settings
from app.runs.lifecycle import MAX_ATTEMPTS, claim_run, fail_exhausted
from app.worker.execution import RunExecution


def _queue(db: Database, n: int) -> list[str]:
    with db.session() as session:
        runs = [Run(config={}, total_steps=1) for _ in range(n)]
        session.add_all(runs)
        session.flush()
        return [r.id for r in runs]


def test_concurrent_claims_take_each_run_exactly_once(db: Database) -> None:
    ids = _queue(db, 24)
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(name: str) -> None:
        start.wait()
        while (run_id := claim_run(db, name, 30)) is not None:
            with lock:
                claimed.append(run_id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(claimed) == Counter(ids)
    with db.session() as session:
        assert {session.get(Run, i).status for i in ids} == {"running"}


def test_expired_lease_is_reclaimed_and_live_one_is_not(db: Database, settings: Settings) -> None:
    (run_id,) = _queue(db, 1)
    assert claim_run(db, "a", 30) == run_id
    assert claim_run(db, "b", 30) is None  # lease held
    with db.session() as session:
        session.get(Run, run_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    assert claim_run(db, "b", 30) == run_id  # a crashed; b takes over
    with db.session() as session:
        run = session.get(Run, run_id)
        assert (run.worker_id, run.attempts) == ("b", 2)
    # The old owner's heartbeat now finds the run gone and stops itself.
    stale = RunExecution(db, settings, run_id, "a", threading.Event())
    stale.renew()
    assert stale.lost.is_set() and stale.should_stop()


def test_heartbeat_extends_lease_and_reads_cancel(db: Database, settings: Settings) -> None:
    (run_id,) = _queue(db, 1)
    claim_run(db, "a", 1)
    execution = RunExecution(db, settings, run_id, "a", threading.Event())
    time.sleep(0.05)
    execution.renew(step=3)
    with db.session() as session:
        run = session.get(Run, run_id)
        assert run.step == 3
        assert run.lease_expires_at > utcnow() + timedelta(seconds=settings.worker_lease_seconds - 1)
        run.cancel_requested = True
    execution.renew()
    assert execution.cancelled.is_set() and not execution.lost.is_set()


def test_runs_that_keep_crashing_fail(db: Database) -> None:
    (run_id,) = _queue(db, 1)
    for i in range(MAX_ATTEMPTS):
        assert claim_run(db, f"w{i}", 30) == run_id
        with db.session() as session:
            session.get(Run, run_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    assert claim_run(db, "last", 30) is None
    assert fail_exhausted(db) == 1
    with db.session() as session:
        run = session.get(Run, run_id)
        assert run.status == "failed" and "lost" in run.error
