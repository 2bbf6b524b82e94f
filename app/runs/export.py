"""Streamed exports of molecules (CSV, SDF with scores as properties, JSONL): a whole run's
(``export_stream``), or any molecules of one run (the browser's selection, ``app.pages.selection``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from app.chem.render import sdf_record
from app.core.db import Database
from app.core.models import Molecule, Run
from app.runs.poses import pose_molblock, pose_record
from app.runs.purchasability import BlockFlags, ExportNotes

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


def run_notes(db: Database, run_id: str, block_flags: BlockFlags | None = None) -> ExportNotes:
    """The run's alerts / purchasability columns, its blocks flagged with its own catalogue."""
    with db.session() as session:
        config = session.scalar(select(Run.config).where(Run.id == run_id))
    return ExportNotes(config, block_flags)


def export_csv(molecules: Iterable[Molecule], scores: list[str], notes: ExportNotes) -> Iterator[str]:
    """A header, then one row per molecule in the order given; ``scores``: the ``score_*`` columns."""
    columns = [
        "id",
        "smiles",
        "inchikey",
        "reward",
        "step",
        "times_sampled",
        *[f"score_{n}" for n in scores],
        "purchasable",
        "alerts",
        "building_blocks_purchasable",
        "route",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for i, mol in enumerate(molecules):
        row = [
            *_base(mol).values(), *[(mol.scores or {}).get(n) for n in scores],
            *notes.text(mol.purchasable, mol.alerts, mol.route).values(), json.dumps(mol.route),
        ]
        writer.writerow(row)
        if i % 200 == 199:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def export_jsonl(molecules: Iterable[Molecule], notes: ExportNotes) -> Iterator[str]:
    for mol in molecules:
        found = notes.fields(mol.purchasable, mol.alerts, mol.route)
        yield json.dumps({**_base(mol), "scores": mol.scores, **found, "route": mol.route}) + "\n"


def export_sdf(
    molecules: Iterable[Molecule], notes: ExportNotes, pose_dir: Path | None = None
) -> Iterator[str]:
    """One record per molecule, named ``run_id:id``; a molecule with a docked pose under ``pose_dir``
    gets the pose's 3-D coordinates (hydrogens included) as its molecule block, the others a 2-D
    depiction: the ``coordinates`` property says which (``docked_3d`` or ``2d``)."""
    for mol in molecules:
        props = {
            **_base(mol),
            **{f"score_{k}": v for k, v in (mol.scores or {}).items()},
            **notes.text(mol.purchasable, mol.alerts, mol.route),
            "route": json.dumps(mol.route),
        }
        props.pop("smiles")
        props["smiles"] = mol.smiles
        name = f"{mol.run_id}:{mol.id}"
        block = pose_molblock(pose_dir, mol.pose) if pose_dir is not None and mol.pose else None
        if block is None:
            yield sdf_record(mol.smiles, name, {**props, "coordinates": "2d"})
        else:
            yield pose_record(block, name, {**props, "coordinates": "docked_3d"})


def export_stream(
    db: Database, run_id: str, fmt: ExportFormat, pose_dir: Path | None = None,
    block_flags: BlockFlags | None = None,
) -> Iterator[str]:
    """``fmt`` export of all of a run's molecules, best first; ``pose_dir``: where its docked poses are
    (``app.runs.poses``), for SDF; ``block_flags``: the process's open purchasability catalogues (a
    fresh one otherwise)."""
    notes = run_notes(db, run_id, block_flags)
    molecules = iter_molecules(db, run_id)
    if fmt == "sdf":
        return export_sdf(molecules, notes, pose_dir)
    if fmt == "jsonl":
        return export_jsonl(molecules, notes)
    return export_csv(molecules, score_names(db, run_id), notes)
