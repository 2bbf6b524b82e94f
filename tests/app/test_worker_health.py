"""A worker's health file (what the container healthcheck reads) is touched only while the worker
reaches its database: each idle poll, each lease renewal; it goes stale when the database is away."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from app.core.db import Database
from app.core.settings import Settings
from app.worker.process import Worker


def _run_briefly(worker: Worker, seconds: float) -> None:
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    time.sleep(seconds)
    worker.shutdown.set()
    thread.join(timeout=30)


def test_the_health_file_is_fresh_only_while_the_database_answers(
    migrated_sqlite: Path, tmp_path: Path
) -> None:
    database = tmp_path / "synflow.db"
    shutil.copyfile(migrated_sqlite, database)
    health = tmp_path / "alive"
    settings = Settings(
        database_url=f"sqlite:///{database}",
        data_dir=tmp_path,
        worker_poll_seconds=0.1,
        worker_health_file=health,
    )
    db = Database.from_settings(settings)
    try:
        _run_briefly(Worker(db, settings), 0.5)
    finally:
        db.dispose()
    assert health.exists() and time.time() - health.stat().st_mtime < 5

    health.unlink()
    away = settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    db = Database.from_settings(away)
    try:
        _run_briefly(Worker(db, away), 1.0)
    finally:
        db.dispose()
    assert not health.exists(), "no database, no sign of life"
