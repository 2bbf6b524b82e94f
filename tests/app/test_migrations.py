"""The Alembic migrations build exactly the schema the ORM models describe, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.core.db import make_engine
from app.core.migrate import current_head, downgrade, upgrade
from app.core.models import Base

# A run and a molecule as an older schema stores them (columns every revision has).
OLD_RUN = (
    "INSERT INTO runs (id, name, kind, status, config, step, total_steps, created_at, updated_at,"
    " attempts, cancel_requested) VALUES ('r1', 'old', 'train', 'succeeded', '{}', 0, 1,"
    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, false)"
)
OLD_MOLECULE = (
    "INSERT INTO molecules (run_id, smiles, reward, scores, step, last_step, first_seen, times_sampled)"
    " VALUES ('r1', 'CCO', 0.5, '{}', 1, 1, CURRENT_TIMESTAMP, 1)"
)

@pytest.mark.parametrize("empty_database_url", ["sqlite", "postgresql"], indirect=True)
def test_migrations_match_models_and_downgrade(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            assert context.get_current_revision() == current_head()
        downgrade(empty_database_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(empty_database_url)
        assert {"runs", "molecules", "metrics", "libraries", "api_tokens"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()


def test_sqlite_has_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


@pytest.mark.parametrize("empty_database_url", ["sqlite", "postgresql"], indirect=True)
def test_0003_turns_stored_sampling_jobs_into_typed_sampling_configs(empty_database_url: str) -> None:
    """Before 0003 a sampling job stored a copy of its parent's RunConfig next to the count."""
    from sqlalchemy import text

    from app.core.models import Run
    from app.runs.configs import sampling_config_of

    upgrade(empty_database_url, "0002")
    engine = make_engine(empty_database_url)
    try:
        old = '{"run_config": {"reward": {"components": [{"type": "qed"}]}}, "count": 7}'
        cast = "CAST(:config AS JSONB)" if engine.dialect.name == "postgresql" else ":config"
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (id, name, kind, status, config, step, total_steps, created_at,"
                    " updated_at, attempts, cancel_requested)"
                    f" VALUES ('s1', 'old', 'sample', 'queued', {cast}, 0, 1,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, false)"
                ),
                {"config": old},
            )
        upgrade(empty_database_url)
        with engine.connect() as conn:
            config = conn.execute(text("SELECT config FROM runs WHERE id = 's1'")).scalar_one()
        row = Run(kind="sample", config=config if isinstance(config, dict) else json.loads(config))
        assert sampling_config_of(row).model_dump() == {"count": 7, "temperature": 1.0, "preference": None}
    finally:
        engine.dispose()


@pytest.mark.parametrize("empty_database_url", ["sqlite", "postgresql"], indirect=True)
def test_0004_adds_fingerprint_columns_that_old_rows_leave_null(empty_database_url: str) -> None:
    from sqlalchemy import text

    upgrade(empty_database_url, "0003")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(OLD_RUN))
            conn.execute(text(OLD_MOLECULE))
        upgrade(empty_database_url, "0004")
        columns = {c["name"] for c in inspect(engine).get_columns("molecules")}
        assert {"fingerprint", "fingerprint_popcount"} <= columns
        with engine.connect() as conn:
            row = conn.execute(text("SELECT smiles, fingerprint, fingerprint_popcount FROM molecules")).one()
        assert tuple(row) == ("CCO", None, None)
        downgrade(empty_database_url, "0003")
        columns = {c["name"] for c in inspect(engine).get_columns("molecules")}
        assert not {"fingerprint", "fingerprint_popcount"} & columns
        with engine.connect() as conn:
            assert conn.execute(text("SELECT smiles FROM molecules")).scalar_one() == "CCO"
    finally:
        engine.dispose()


@pytest.mark.parametrize("empty_database_url", ["sqlite", "postgresql"], indirect=True)
def test_0006_adds_reward_models_and_its_downgrade_keeps_runs(empty_database_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    upgrade(empty_database_url, "0005")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(OLD_RUN))
        assert "reward_models" not in inspect(engine).get_table_names()
        upgrade(empty_database_url, "0006")
        columns = {c["name"] for c in inspect(engine).get_columns("reward_models")}
        assert {"name", "version", "metrics", "path", "sha256", "n_duplicates", "direction"} <= columns
        insert = (
            "INSERT INTO reward_models (name, version, created_at, n_rows, n_molecules, n_duplicates,"
            " n_rejected, direction, estimator, metrics, smiles_column, value_column, path, sha256)"
            " VALUES ('logp', 1, CURRENT_TIMESTAMP, 3, 3, 0, 0, 'higher', 'random_forest', '{}',"
            " 'smiles', 'logp', '/x.npz', :sha)"
        )
        with engine.begin() as conn:
            conn.execute(text(insert), {"sha": "0" * 64})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(insert), {"sha": "1" * 64})  # one row per name and version
        downgrade(empty_database_url, "0005")
        assert "reward_models" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM runs")).scalar_one() == "r1"
    finally:
        engine.dispose()


@pytest.mark.parametrize("empty_database_url", ["sqlite", "postgresql"], indirect=True)
def test_0005_adds_note_columns_that_old_rows_leave_null(empty_database_url: str) -> None:
    from sqlalchemy import text

    upgrade(empty_database_url, "0004")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(OLD_RUN))
            conn.execute(text(OLD_MOLECULE))
        upgrade(empty_database_url, "0005")
        columns = {c["name"] for c in inspect(engine).get_columns("molecules")}
        assert {"alerts", "purchasable", "pose"} <= columns
        with engine.connect() as conn:
            row = conn.execute(text("SELECT smiles, alerts, purchasable, pose FROM molecules")).one()
        assert tuple(row) == ("CCO", None, None, None)
        downgrade(empty_database_url, "0004")
        columns = {c["name"] for c in inspect(engine).get_columns("molecules")}
        assert not {"alerts", "purchasable", "pose"} & columns
        with engine.connect() as conn:
            assert conn.execute(text("SELECT smiles FROM molecules")).scalar_one() == "CCO"
    finally:
        engine.dispose()
