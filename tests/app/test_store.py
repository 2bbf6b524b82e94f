"""Molecule and metric writes are batched and idempotent on both databases."""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from sqlalchemy import func, select

from app.core.db import Database
from app.core.models import UNREADABLE_POPCOUNT, Metric, Molecule, Run
from app.runs.store import write_metrics, write_molecules
from reactions.similarity import ecfp4_generator, packed_ecfp4_bytes
from reactions.smiles import inchikey
from synflow.callbacks import SampledMolecule


def _run(db: Database) -> str:
    with db.session() as session:
        run = Run(config={}, total_steps=10)
        session.add(run)
        session.flush()
        return run.id


def _rows(db: Database, run_id: str) -> dict[str, tuple[int, int, int, float]]:
    with db.session() as session:
        rows = session.execute(
            select(
                Molecule.smiles, Molecule.step, Molecule.last_step, Molecule.times_sampled, Molecule.reward
            ).where(Molecule.run_id == run_id)
        )
        return {s: (step, last, times, reward) for s, step, last, times, reward in rows}


def test_replayed_step_inserts_nothing_twice(db: Database) -> None:
    run_id = _run(db)
    step1 = [
        SampledMolecule("CCO", 0.5, 1, {"qed": 0.4}, {"steps": []}),
        SampledMolecule("c1ccccc1", 0.7, 1, {"qed": 0.6}),
        SampledMolecule("CCO", 0.5, 1, {"qed": 0.4}),
    ]
    with db.session() as session:
        write_molecules(session, run_id, step1)
    assert _rows(db, run_id) == {"CCO": (1, 1, 2, 0.5), "c1ccccc1": (1, 1, 1, 0.7)}
    with db.session() as session:  # a crash after the write, then a resume replays step 1
        write_molecules(session, run_id, step1)
    assert _rows(db, run_id) == {"CCO": (1, 1, 2, 0.5), "c1ccccc1": (1, 1, 1, 0.7)}
    with db.session() as session:  # a later step resamples CCO: counted, first step kept
        write_molecules(
            session, run_id, [SampledMolecule("CCO", 0.9, 2, {"qed": 0.9}), SampledMolecule("CCN", 0.1, 2)]
        )
    assert _rows(db, run_id) == {"CCO": (1, 2, 3, 0.5), "c1ccccc1": (1, 1, 1, 0.7), "CCN": (2, 2, 1, 0.1)}


def test_large_batch_is_chunked(db: Database) -> None:
    run_id = _run(db)
    records = [SampledMolecule("C" * (i % 50 + 1) + f"O{i}", i / 5000, 1) for i in range(5000)]
    with db.session() as session:
        assert write_molecules(session, run_id, records) == 5000
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Molecule)) == 5000


def test_metrics_upsert(db: Database) -> None:
    run_id = _run(db)
    with db.session() as session:
        write_metrics(session, run_id, 10, {"loss": 1.0, "top10": 0.5, "bad": float("nan")})
        write_metrics(session, run_id, 10, {"loss": 0.5})
    with db.session() as session:
        rows = dict(session.execute(select(Metric.name, Metric.value).where(Metric.step == 10)).all())
    assert rows == {"loss": 0.5, "top10": 0.5, "bad": None}


def test_deleting_a_run_cascades(db: Database) -> None:
    run_id = _run(db)
    with db.session() as session:
        write_molecules(session, run_id, [SampledMolecule("CCO", 0.5, 1)])
        write_metrics(session, run_id, 1, {"loss": 1.0})
    with db.session() as session:
        session.delete(session.get(Run, run_id))
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Molecule)) == 0
        assert session.scalar(select(func.count()).select_from(Metric)) == 0


def test_inchikeys_from_the_record_or_computed(db: Database) -> None:
    """The trainer sends each molecule's InChIKey (computed once per molecule); a record without one
    gets it computed by the store; either way the stored key is RDKit's standard InChIKey."""
    run_id = _run(db)
    given = inchikey("CC(=O)Nc1ccc(O)cc1")
    assert given == "RZVAJINKPMORJF-UHFFFAOYSA-N"
    with db.session() as session:
        write_molecules(
            session,
            run_id,
            [SampledMolecule("CC(=O)Nc1ccc(O)cc1", 0.5, 1, inchikey=given), SampledMolecule("CCO", 0.1, 1)],
        )
    with db.session() as session:
        rows = session.execute(select(Molecule.smiles, Molecule.inchikey).where(Molecule.run_id == run_id))
        keys = {smiles: key for smiles, key in rows}
    assert keys == {"CC(=O)Nc1ccc(O)cc1": given, "CCO": "LFQSCWFLJHTTHZ-UHFFFAOYSA-N"}


def test_fingerprints_from_the_record_or_computed(db: Database) -> None:
    """Each new row stores its packed ECFP4 and popcount: the record's own (the trainer computes it
    once per molecule, taken as is) or one computed by the store; -1 and no fingerprint when RDKit
    cannot read the SMILES (never similar to anything)."""
    run_id = _run(db)
    given = bytes(255) + b"\x03"  # not CCO's fingerprint: shows the record's value is what is stored
    with db.session() as session:
        write_molecules(
            session,
            run_id,
            [
                SampledMolecule("CCO", 0.1, 1, fingerprint=given),
                SampledMolecule("CC(=O)Nc1ccc(O)cc1", 0.5, 1),
                SampledMolecule("C1CC", 0.2, 1),  # an unclosed ring
            ],
        )
    with db.session() as session:
        rows = session.execute(
            select(Molecule.smiles, Molecule.fingerprint, Molecule.fingerprint_popcount).where(
                Molecule.run_id == run_id
            )
        )
        stored = {smiles: (fp, count) for smiles, fp, count in rows}
    paracetamol = packed_ecfp4_bytes("CC(=O)Nc1ccc(O)cc1")
    assert paracetamol is not None and len(paracetamol) == 256
    reference = ecfp4_generator().GetFingerprint(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"))
    assert stored == {
        "CCO": (given, 2),
        "CC(=O)Nc1ccc(O)cc1": (paracetamol, reference.GetNumOnBits()),
        "C1CC": (None, UNREADABLE_POPCOUNT),
    }
    assert np.array_equal(np.unpackbits(np.frombuffer(paracetamol, np.uint8)), np.array(list(reference)))


def test_scorer_notes_become_columns(db: Database) -> None:
    """Alerts, purchasability and the pose file travel from the reward's notes into their columns;
    a molecule no such component looked at keeps NULLs."""
    run_id = _run(db)
    alerts = ["PAINS_A: ene_rhod_A(235)", "Brenk: thiol"]
    notes = {"alerts": alerts, "purchasable": False, "pose": "ab/cd.sdf"}
    with db.session() as session:
        write_molecules(
            session,
            run_id,
            [
                SampledMolecule("CCS", 0.2, 1, notes=notes),
                SampledMolecule("CCO", 0.5, 1, notes={"purchasable": True, "alerts": []}),
                SampledMolecule("CCN", 0.5, 1),
            ],
        )
    with db.session() as session:
        got = {
            m.smiles: (m.alerts, m.purchasable, m.pose)
            for m in session.scalars(select(Molecule).where(Molecule.run_id == run_id))
        }
    assert got == {
        "CCS": (alerts, False, "ab/cd.sdf"),
        "CCO": ([], True, None),
        "CCN": (None, None, None),
    }
