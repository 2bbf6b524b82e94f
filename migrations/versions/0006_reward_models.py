"""reward_models: versions of the models fitted to uploaded measurements (``assay_model`` rewards);
a run's config records the name@version, file and SHA-256 it was resolved to

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reward_models",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_molecules", sa.Integer(), nullable=False),
        sa.Column("n_duplicates", sa.Integer(), nullable=False),
        sa.Column("n_rejected", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("estimator", sa.String(32), nullable=False),
        sa.Column("metrics", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("smiles_column", sa.String(200), nullable=False),
        sa.Column("value_column", sa.String(200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_reward_models_name_version"),
    )


def downgrade() -> None:
    op.drop_table("reward_models")
