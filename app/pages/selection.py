"""Export of a chosen set of molecules (the browser's selection) as CSV or SDF.

The REST export streams a whole run; a selection is a few hundred ids at most, read in one query.
Rows follow the selection's order; ids not in the run are skipped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.chem.render import sdf_record
from app.core.models import Molecule

SelectionFormat = Literal["csv", "sdf"]
SELECTION_MEDIA_TYPES = {"csv": "text/csv", "sdf": "chemical/x-mdl-sdfile"}
MAX_SELECTION = 5000


def parse_ids(text: str) -> list[int]:
    """``"3,5,8"`` → ``[3, 5, 8]``; duplicates dropped, order kept."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            raise ValueError(f"{part!r} is not a molecule id")
        if int(part) not in ids:
            ids.append(int(part))
    if not ids:
        raise ValueError("select at least one molecule")
    if len(ids) > MAX_SELECTION:
        raise ValueError(f"at most {MAX_SELECTION} molecules per export")
    return ids


def _selected(session: Session, run_id: str, ids: list[int]) -> list[Molecule]:
    rows = session.scalars(select(Molecule).where(Molecule.run_id == run_id, Molecule.id.in_(ids)))
    by_id = {m.id: m for m in rows}
    return [by_id[i] for i in ids if i in by_id]


def _row(mol: Molecule) -> dict[str, object]:
    return {"id": mol.id, "smiles": mol.smiles, "inchikey": mol.inchikey, "reward": mol.reward,
            "step": mol.step, "times_sampled": mol.times_sampled}


def selection_stream(session: Session, run_id: str, ids: list[int], fmt: SelectionFormat) -> Iterator[str]:
    molecules = _selected(session, run_id, ids)
    if fmt == "sdf":
        return iter([_sdf(run_id, m) for m in molecules])
    return iter([_csv(molecules)])


def _sdf(run_id: str, mol: Molecule) -> str:
    props = {**_row(mol), **{f"score_{k}": v for k, v in (mol.scores or {}).items()},
             "route": json.dumps(mol.route)}
    return sdf_record(mol.smiles, f"{run_id}:{mol.id}", props)


def _csv(molecules: list[Molecule]) -> str:
    names = sorted({name for m in molecules for name in (m.scores or {})})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "smiles", "inchikey", "reward", "step", "times_sampled",
                     *[f"score_{n}" for n in names], "route"])
    for mol in molecules:
        scores = mol.scores or {}
        writer.writerow([*_row(mol).values(), *[scores.get(n) for n in names], json.dumps(mol.route)])
    return buffer.getvalue()
