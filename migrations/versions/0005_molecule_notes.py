"""molecules.alerts (JSON list of matched structural-alert names), molecules.purchasable (bool) and
molecules.pose (the best docked pose's file, relative to DATA_DIR/poses): what a run's reward
components found besides scores; NULL on existing rows and where no component looked

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("molecules") as batch:
        batch.add_column(sa.Column("alerts", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True))
        batch.add_column(sa.Column("purchasable", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("pose", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("molecules") as batch:
        batch.drop_column("pose")
        batch.drop_column("purchasable")
        batch.drop_column("alerts")
