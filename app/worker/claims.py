"""Claiming runs: one atomic ``UPDATE ... RETURNING`` takes the oldest queued or lease-expired run."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from app.core.db import Database
from app.core.models import Run, utcnow

log = logging.getLogger("synflow.worker")


MAX_ATTEMPTS = 5


class LeaseLost(RuntimeError):
    """Another worker owns the run now (this one stalled past its lease)."""


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
