"""Run Alembic programmatically: ``synflow db upgrade``, the entrypoint script and tests share this."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory


def migrations_dir() -> Path:
    """``migrations/`` beside the package in a checkout; ``SYNFLOW_MIGRATIONS_DIR`` for installs."""
    return Path(
        os.environ.get("SYNFLOW_MIGRATIONS_DIR") or Path(__file__).resolve().parents[2] / "migrations"
    )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolates '%'; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current_head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
