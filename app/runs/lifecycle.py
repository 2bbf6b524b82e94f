"""A run's life: its statuses, the transitions between them, and the one SQL statement for each.

::

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled
      │  ▲              │  ▲ └─hand back (worker shutdown)─▶ queued
      │  └──resume──────┼──┼──── failed | cancelled
      └──cancel─────────┼──┘ lease expired: another worker claims it again (attempts + 1)
                        └─ MAX_ATTEMPTS lost leases ─▶ failed

Every transition is a conditional ``UPDATE`` on the current status (and, for a worker, on its
ownership of the row), so racing API calls and workers never overwrite each other: whichever
statement commits first wins and the other changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from app.core.db import Database
from app.core.models import Run, utcnow

__all__ = [
    "FINISHED",
    "MAX_ATTEMPTS",
    "TRANSITIONS",
    "RunStatus",
    "cancel",
    "claim_run",
    "fail_exhausted",
    "finish",
    "renew_lease",
    "requeue",
]

MAX_ATTEMPTS = 5


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.FAILED: frozenset({RunStatus.QUEUED}),
    RunStatus.CANCELLED: frozenset({RunStatus.QUEUED}),
    RunStatus.SUCCEEDED: frozenset(),
}


def _claimable(now: Any) -> ColumnElement[bool]:
    expired = and_(Run.status == RunStatus.RUNNING, Run.lease_expires_at < now)
    return or_(Run.status == RunStatus.QUEUED, expired)


def claim_run(db: Database, worker_id: str, lease_seconds: float) -> str | None:
    """queued (or running with an expired lease) → running: atomically take the oldest such run.

    One ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING id``: on PostgreSQL
    concurrent workers skip each other's locked rows, on SQLite writes are serialised.
    """
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
            status=RunStatus.RUNNING,
            worker_id=worker_id,
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Run.attempts + 1,
            started_at=utcnow(),
            updated_at=now,
        )
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        return session.execute(stmt).scalar_one_or_none()


def fail_exhausted(db: Database) -> int:
    """running with an expired lease, ``MAX_ATTEMPTS`` times → failed (never retried forever)."""
    now = utcnow()
    stmt = (
        update(Run)
        .where(_claimable(now), Run.status == RunStatus.RUNNING, Run.attempts >= MAX_ATTEMPTS)
        .values(
            status=RunStatus.FAILED,
            finished_at=now,
            lease_expires_at=None,
            error=f"worker lost {MAX_ATTEMPTS} times (crash or out of memory?)",
        )
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def renew_lease(
    session: Session, run_id: str, worker_id: str, lease_seconds: float, **values: Any
) -> bool | None:
    """running → running (the owner's heartbeat, storing ``values``): None when this worker no longer
    owns a running row, else whether a cancel was requested."""
    now = utcnow()
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.worker_id == worker_id, Run.status == RunStatus.RUNNING)
        .values(
            heartbeat_at=now,
            updated_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            **values,
        )
        .returning(Run.cancel_requested)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).first()
    return None if row is None else bool(row[0])


def finish(session: Session, run_id: str, worker_id: str, status: RunStatus, **values: Any) -> bool:
    """running → ``status`` (succeeded, failed, cancelled, or queued to hand the run back), only
    while ``worker_id`` still owns the running row; never over a status someone else set."""
    assert status in TRANSITIONS[RunStatus.RUNNING], status
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.worker_id == worker_id, Run.status == RunStatus.RUNNING)
        .values(
            status=status,
            finished_at=None if status == RunStatus.QUEUED else utcnow(),
            lease_expires_at=None,
            updated_at=utcnow(),
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def cancel(session: Session, run_id: str) -> bool:
    """queued → cancelled at once; running → cancel requested (the worker stops within a step).
    False when the run had already finished."""
    now = utcnow()
    queued = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.QUEUED)
        .values(status=RunStatus.CANCELLED, finished_at=now, cancel_requested=True, updated_at=now)
    )
    if queued.rowcount:  # type: ignore[attr-defined]
        return True
    running = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.RUNNING)
        .values(cancel_requested=True, updated_at=now)
    )
    return bool(running.rowcount)  # type: ignore[attr-defined]


def requeue(session: Session, run_id: str) -> bool:
    """failed | cancelled → queued (resume from the last checkpoint). False for any other status."""
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status.in_([RunStatus.FAILED, RunStatus.CANCELLED]))
        .values(
            status=RunStatus.QUEUED,
            cancel_requested=False,
            error=None,
            stop_reason=None,
            finished_at=None,
            worker_id=None,
            lease_expires_at=None,
            attempts=0,
            updated_at=utcnow(),
        )
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
