"""molecules.fingerprint (packed ECFP4, 256 bytes) and molecules.fingerprint_popcount: the
similarity search reads stored fingerprints and prunes by popcount in SQL instead of running RDKit
on every row; existing rows keep NULL (the search computes theirs on the fly)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("molecules") as batch:
        batch.add_column(sa.Column("fingerprint", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("fingerprint_popcount", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("molecules") as batch:
        batch.drop_column("fingerprint_popcount")
        batch.drop_column("fingerprint")
