"""Database fixtures: every database test runs on SQLite and on a throwaway PostgreSQL 15.

PostgreSQL starts once per test session (per xdist worker) when ``initdb``/``pg_ctl`` are on PATH;
otherwise the PostgreSQL cases skip with the reason shown in the summary (``-ra``). Migrations run
once per session and dialect; each test gets a copy (a file copy on SQLite, ``CREATE DATABASE …
TEMPLATE`` on PostgreSQL), so tests never share rows and never pay for Alembic again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.db import Database
from app.core.migrate import upgrade
from app.core.settings import Settings
from devsupport.postgres import PostgresUnavailable, ThrowawayPostgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres | None]:
    try:
        server = ThrowawayPostgres().start()
    except PostgresUnavailable:
        yield None
        return
    try:
        yield server
    finally:
        server.stop()


MIGRATED_TEMPLATE = "synflow_migrated"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_server: ThrowawayPostgres | None) -> str | None:
    if postgres_server is None:
        return None
    upgrade(postgres_server.create_database(MIGRATED_TEMPLATE))
    return MIGRATED_TEMPLATE


def _database_url(kind: str, tmp_path: Path, server: ThrowawayPostgres | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'synflow.db'}"
    if server is None:
        pytest.skip("PostgreSQL cases skipped: initdb/pg_ctl not found on PATH or failed to start")
    return server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each dialect (a copy of the session's migrated one)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("migrated_sqlite")
        target = tmp_path / "synflow.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    name = request.getfixturevalue("migrated_postgres_template")
    server = request.getfixturevalue("postgres_server")
    if name is None or server is None:
        pytest.skip("PostgreSQL cases skipped: initdb/pg_ctl not found on PATH or failed to start")
    return server.create_database(template=name)


@pytest.fixture
def empty_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: ThrowawayPostgres | None
) -> str:
    """An unmigrated database; parametrise indirectly with the dialect name."""
    return _database_url(request.param, tmp_path, postgres_server)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url, data_dir=tmp_path / "data", worker_lease_seconds=5, worker_poll_seconds=0.2
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database.from_settings(settings)
    try:
        yield database
    finally:
        database.dispose()
