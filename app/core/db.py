"""Engine and session construction; SQLite gets WAL and foreign keys, both dialects share one code path."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.core.settings import Settings

log = logging.getLogger("synflow.db")
T = TypeVar("T")


def is_transient(error: BaseException) -> bool:
    """A lost connection, a server restarting or SQLite's ``database is locked``: worth retrying.

    Integrity and programming errors are not: retrying them would only repeat the failure. The
    drivers' own errors count too: the bulk-write fast paths (``app.runs.store``) use the raw driver
    connection, whose errors SQLAlchemy never wraps.
    """
    if isinstance(error, OperationalError | InterfaceError):
        return True
    if isinstance(error, DBAPIError):
        return error.connection_invalidated
    driver = type(error).__module__.split(".")[0]
    return driver in _DRIVERS and type(error).__name__ in ("OperationalError", "InterfaceError")


_DRIVERS = ("sqlite3", "psycopg", "psycopg2")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Up to 64 MiB of page cache (grown on demand; default 2 MiB): bulk upserts insert into the
    # (run_id, smiles) and reward indexes at random places, and misses cost a read each.
    cursor.execute("PRAGMA cache_size=-65536")
    # Workers and the API write concurrently; wait for the lock instead of failing at once.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def _first_line(error: Exception) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


class Database:
    """An engine and its session factory; created by entry points, passed to whoever needs it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        settings.ensure_dirs()
        return cls(settings.resolved_database_url())

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def retrying(self, work: Callable[[Session], T], patience: float, what: str = "database write") -> T:
        """Run ``work`` in its own transaction, retrying transient errors for up to ``patience`` s.

        ``work`` must be idempotent (upserts, conditional updates): a commit whose acknowledgement
        was lost is run again. The pool's pre-ping replaces connections a restart has broken.
        """
        give_up = time.monotonic() + patience
        delay = 0.1
        while True:
            try:
                with self.session() as session:
                    return work(session)
            except Exception as error:
                if not is_transient(error) or time.monotonic() + delay > give_up:
                    raise
                log.warning("%s: database unavailable (%s); retrying in %.1f s",
                            what, _first_line(error), delay)
            time.sleep(delay)
            delay = min(2 * delay, 2.0)

    def dispose(self) -> None:
        self.engine.dispose()
