"""Streamed exports of a run's molecules (CSV, SDF with scores as properties, JSONL)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Literal

from sqlalchemy import select

from app.chem.render import sdf_record
from app.core.db import Database
from app.core.models import Molecule

ExportFormat = Literal["csv", "sdf", "jsonl"]
MEDIA_TYPES = {"csv": "text/csv", "sdf": "chemical/x-mdl-sdfile", "jsonl": "application/x-ndjson"}
BATCH = 1000


def iter_molecules(db: Database, run_id: str) -> Iterator[Molecule]:
    """All of a run's molecules by descending reward, read in keyset batches (bounded memory)."""
    last: tuple[float, int] | None = None
    while True:
        with db.session() as session:
            stmt = select(Molecule).where(Molecule.run_id == run_id)
            if last is not None:
                stmt = stmt.where(
                    (Molecule.reward < last[0]) | ((Molecule.reward == last[0]) & (Molecule.id < last[1]))
                )
            rows = list(
                session.scalars(stmt.order_by(Molecule.reward.desc(), Molecule.id.desc()).limit(BATCH))
            )
        yield from rows
        if len(rows) < BATCH:
            return
        last = (rows[-1].reward, rows[-1].id)


def score_names(db: Database, run_id: str, probe: int = 1000) -> list[str]:
    names: set[str] = set()
    with db.session() as session:
        for scores in session.scalars(select(Molecule.scores).where(Molecule.run_id == run_id).limit(probe)):
            names.update(scores or {})
    return sorted(names)


def _base(mol: Molecule) -> dict[str, object]:
    return {
        "id": mol.id,
        "smiles": mol.smiles,
        "inchikey": mol.inchikey,
        "reward": mol.reward,
        "step": mol.step,
        "times_sampled": mol.times_sampled,
    }


def export_csv(db: Database, run_id: str) -> Iterator[str]:
    scores = score_names(db, run_id)
    columns = [
        "id",
        "smiles",
        "inchikey",
        "reward",
        "step",
        "times_sampled",
        *[f"score_{n}" for n in scores],
        "route",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for i, mol in enumerate(iter_molecules(db, run_id)):
        row = [*_base(mol).values(), *[(mol.scores or {}).get(n) for n in scores], json.dumps(mol.route)]
        writer.writerow(row)
        if i % 200 == 199:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def export_jsonl(db: Database, run_id: str) -> Iterator[str]:
    for mol in iter_molecules(db, run_id):
        yield json.dumps({**_base(mol), "scores": mol.scores, "route": mol.route}) + "\n"


def export_sdf(db: Database, run_id: str) -> Iterator[str]:
    for mol in iter_molecules(db, run_id):
        props = {
            **_base(mol),
            **{f"score_{k}": v for k, v in (mol.scores or {}).items()},
            "route": json.dumps(mol.route),
        }
        props.pop("smiles")
        props["smiles"] = mol.smiles
        yield sdf_record(mol.smiles, f"{run_id}:{mol.id}", props)


def export_stream(db: Database, run_id: str, fmt: ExportFormat) -> Iterator[str]:
    return {"csv": export_csv, "sdf": export_sdf, "jsonl": export_jsonl}[fmt](db, run_id)
