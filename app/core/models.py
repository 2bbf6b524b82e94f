"""ORM models. Schema changes go through Alembic (``migrations/``); a test checks the two agree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a bigint identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


# ``molecules.fingerprint_popcount`` of a molecule RDKit cannot read (it has no fingerprint, and no
# Tanimoto bound admits -1): such a row is never similar to anything, as before fingerprints were stored.
UNREADABLE_POPCOUNT = -1


def utcnow() -> datetime:
    """Naive UTC: stored the same way on SQLite and PostgreSQL and compared in SQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class Run(Base):
    """A training run or a sampling job (``kind``); workers claim both the same way."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_run_id)
    name: Mapped[str] = mapped_column(String(200), default="run")
    kind: Mapped[str] = mapped_column(String(16), default="train")
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # app.runs.lifecycle
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    # Why a succeeded run ended before its last step (e.g. "oracle budget spent").
    stop_reason: Mapped[str | None] = mapped_column(Text)
    checkpoint_path: Mapped[str | None] = mapped_column(Text)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_runs_claim", "status", "lease_expires_at"),)


class Molecule(Base):
    """One distinct molecule per run; resampling bumps ``times_sampled`` once per step."""

    __tablename__ = "molecules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    smiles: Mapped[str] = mapped_column(Text)
    inchikey: Mapped[str | None] = mapped_column(String(27))
    reward: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    route: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    step: Mapped[int] = mapped_column(Integer)
    last_step: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    times_sampled: Mapped[int] = mapped_column(Integer, default=1)
    # Why a reward plugin could not score this molecule (its reward is then the floor).
    error: Mapped[str | None] = mapped_column(Text)
    # The similarity search's fingerprint, stored once: packed ECFP4 (2048 bits = 256 bytes, see
    # ``reactions.similarity.packed_ecfp4_bytes``) and its number of set bits, which bounds Tanimoto
    # in SQL. Both NULL on rows an older version wrote (the search computes those on the fly);
    # popcount ``UNREADABLE_POPCOUNT`` (-1) and no fingerprint when RDKit cannot read the SMILES.
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    fingerprint_popcount: Mapped[int | None] = mapped_column(Integer)
    # What the reward's scorers found besides scores (``synflow.rewards.base.Scorer.notes``), NULL
    # where no component looked: the names of the structural alerts it matches, whether it is
    # purchasable, and its best docked pose's file (relative to DATA_DIR/poses).
    alerts: Mapped[list[str] | None] = mapped_column(JSONType)
    purchasable: Mapped[bool | None] = mapped_column(Boolean)
    pose: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("run_id", "smiles", name="uq_molecules_run_smiles"),
        Index("ix_molecules_run_reward", "run_id", "reward", "id"),
        Index("ix_molecules_run_step", "run_id", "step", "id"),
        Index("ix_molecules_inchikey", "inchikey"),
    )


class Metric(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    value: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("run_id", "name", "step", name="uq_metrics_run_name_step"),)


class Library(Base):
    """A building-block library or a template set, bundled or uploaded (``kind``)."""

    __tablename__ = "libraries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str | None] = mapped_column(Text)
    bundled: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "name", name="uq_libraries_kind_name"),)


class RewardModel(Base):
    """One version of a model fitted to uploaded measurements (``synflow.rewards.assay``); a run's
    ``assay_model`` component is resolved to one of these when the run is created."""

    __tablename__ = "reward_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, … per name
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    n_rows: Mapped[int] = mapped_column(Integer)  # data rows read, rejected ones included
    n_molecules: Mapped[int] = mapped_column(Integer)  # distinct molecules fitted on
    n_duplicates: Mapped[int] = mapped_column(Integer)  # rows averaged into another of the same molecule
    n_rejected: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(16))  # higher | lower (is better)
    estimator: Mapped[str] = mapped_column(String(32))  # random_forest | gaussian_process
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)  # CV metrics per candidate estimator
    smiles_column: Mapped[str] = mapped_column(String(200))
    value_column: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("name", "version", name="uq_reward_models_name_version"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
