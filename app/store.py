"""Writes from workers: batched, idempotent molecule and metric upserts on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import Metric, Molecule, utcnow

CHUNK_ROWS = 5000  # rows per executemany call (bounded memory per call)


@dataclass(frozen=True)
class MoleculeRecord:
    """What a trainer callback yields for one sampled molecule (canonical SMILES)."""

    smiles: str
    reward: float
    step: int
    scores: dict[str, float] = field(default_factory=dict)
    route: dict[str, Any] | None = None
    inchikey: str | None = None


def _insert(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}; use SQLite or PostgreSQL")


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _aggregate(records: Iterable[MoleculeRecord]) -> list[dict[str, Any]]:
    """One row per SMILES: the first occurrence's data, sampled count and the step span."""
    rows: dict[str, dict[str, Any]] = {}
    now = utcnow()
    for rec in records:
        row = rows.get(rec.smiles)
        if row is None:
            rows[rec.smiles] = {
                "smiles": rec.smiles,
                "inchikey": rec.inchikey,
                "reward": _finite(rec.reward) or 0.0,
                "scores": {k: _finite(v) for k, v in rec.scores.items()},
                "route": rec.route,
                "step": rec.step,
                "last_step": rec.step,
                "first_seen": now,
                "times_sampled": 1,
            }
        else:
            row["times_sampled"] += 1
            row["step"] = min(row["step"], rec.step)
            row["last_step"] = max(row["last_step"], rec.step)
    return list(rows.values())


def write_molecules(session: Session, run_id: str, records: Sequence[MoleculeRecord]) -> int:
    """Upsert a batch; returns the number of rows sent.

    Idempotent for replayed steps: a conflicting row is only updated when the incoming step is later
    than the stored ``last_step``, so a step written twice (a crash between write and checkpoint,
    then a resume) neither duplicates the molecule nor counts its samples twice.
    """
    rows = _aggregate(records)
    if not rows:
        return 0
    table = Molecule.__table__
    stmt = _insert(session, table)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.run_id, table.c.smiles],
        set_={
            "times_sampled": table.c.times_sampled + excluded.times_sampled,
            "last_step": excluded.last_step,
        },
        where=excluded.last_step > table.c.last_step,
    )
    for start in range(0, len(rows), CHUNK_ROWS):
        # executemany: SQLAlchemy batches these into multi-row INSERTs ("insertmanyvalues").
        session.execute(stmt, [dict(row, run_id=run_id) for row in rows[start : start + CHUNK_ROWS]])
    return len(rows)


def write_metrics(session: Session, run_id: str, step: int, values: dict[str, float]) -> None:
    """Upsert one step's metrics (a replayed step overwrites, never duplicates)."""
    rows = [
        {"run_id": run_id, "step": step, "name": name, "value": _finite(value), "created_at": utcnow()}
        for name, value in values.items()
    ]
    if not rows:
        return
    table = Metric.__table__
    stmt = _insert(session, table).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.run_id, table.c.name, table.c.step],
        set_={"value": stmt.excluded.value, "created_at": stmt.excluded.created_at},
    )
    session.execute(stmt)
