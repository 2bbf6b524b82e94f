"""Export of a chosen set of molecules (the browser's selection) as CSV or SDF.

The rows are the run export's (``app.runs.export``: the same columns, notes and docked 3-D poses);
a selection is a few thousand ids at most, read in one query. Rows follow the selection's order;
ids not in the run are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from app.core.db import Database
from app.core.models import Molecule
from app.runs.export import MEDIA_TYPES, export_csv, export_sdf, run_notes, score_names
from app.runs.purchasability import BlockFlags

SelectionFormat = Literal["csv", "sdf"]
SELECTION_MEDIA_TYPES = {fmt: MEDIA_TYPES[fmt] for fmt in ("csv", "sdf")}
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


def _selected(db: Database, run_id: str, ids: list[int]) -> list[Molecule]:
    with db.session() as session:
        rows = session.scalars(select(Molecule).where(Molecule.run_id == run_id, Molecule.id.in_(ids)))
        by_id = {m.id: m for m in rows}
    return [by_id[i] for i in ids if i in by_id]


def selection_stream(
    db: Database, run_id: str, ids: list[int], fmt: SelectionFormat, pose_dir: Path | None = None,
    block_flags: BlockFlags | None = None,
) -> Iterator[str]:
    """The run export's ``fmt`` records for the molecules ``ids`` of ``run_id``, in that order;
    ``pose_dir`` and ``block_flags`` as for ``export_stream``. The CSV has the run export's score
    columns (and any other score a selected molecule has)."""
    notes = run_notes(db, run_id, block_flags)
    molecules = _selected(db, run_id, ids)
    if fmt == "sdf":
        return export_sdf(molecules, notes, pose_dir)
    names = set(score_names(db, run_id)).union(*(m.scores or {} for m in molecules))
    return export_csv(molecules, sorted(names), notes)
