"""runs.stop_reason (why a run ended early, e.g. "oracle budget spent"); sampling jobs keep a typed
``SamplingConfig`` (``{"count", "temperature"}``) instead of a copy of the parent's RunConfig

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("stop_reason", sa.Text(), nullable=True))
    runs = sa.table(
        "runs", sa.column("id", sa.String), sa.column("kind", sa.String), sa.column("config", sa.JSON)
    )
    connection = op.get_bind()
    for run_id, config in connection.execute(
        sa.select(runs.c.id, runs.c.config).where(runs.c.kind == "sample")
    ):
        if isinstance(config, dict) and "run_config" in config:
            sampling = {"count": int(config.get("count", 100)), "temperature": 1.0}
            connection.execute(runs.update().where(runs.c.id == run_id).values(config=sampling))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("stop_reason")
