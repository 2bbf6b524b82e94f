"""Similarity and substructure search over stored molecules, on SQLite and PostgreSQL: every page,
followed by its cursors, gives exactly what a brute-force RDKit pass over all rows gives, with the
same similarity values, also for rows an older version stored without a fingerprint."""

from __future__ import annotations

import gzip
import random
from importlib import resources
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from rdkit import Chem, DataStructs
from sqlalchemy import select, update

from app.chem.filters import ChemCache, SimilarityQuery
from app.core.db import Database
from app.core.models import Molecule, Run
from app.core.settings import Settings
from app.main import create_app
from app.runs.queries import MoleculeQuery, list_molecules
from app.runs.store import write_molecules
from reactions.similarity import ecfp4_generator, packed_ecfp4_bytes
from synflow.callbacks import SampledMolecule

QUERY = "Nc1ccc(S(=O)(=O)Nc2cnccn2)cc1"  # the first bundled building block
UNREADABLE = "C1CC"  # an unclosed ring: no fingerprint, never similar, never a substructure match


def _blocks(n: int) -> list[str]:
    path = resources.files("reactions.data").joinpath("default_building_blocks.smi.gz")
    with path.open("rb") as raw, gzip.open(raw, "rt") as handle:
        return [line.split()[0] for line, _ in zip(handle, range(n), strict=False)]


def _store(db: Database, smiles: list[str]) -> str:
    """A run with these molecules: random rewards and scores, steps with ties (sorts need the id)."""
    rng = random.Random(7)
    with db.session() as session:
        run = Run(config={}, total_steps=10)
        session.add(run)
        session.flush()
        run_id = run.id
    records = [
        SampledMolecule(s, round(rng.random(), 2), i // 25, {"qed": rng.random()}, {"steps": []})
        for i, s in enumerate(smiles)
    ]
    with db.session() as session:
        write_molecules(session, run_id, records)
    return run_id


def _forget_fingerprints(db: Database, run_id: str, every: int) -> None:
    """Rows as an older version left them: no fingerprint, no popcount."""
    with db.session() as session:
        session.execute(
            update(Molecule)
            .where(Molecule.run_id == run_id, Molecule.id % every == 0)
            .values(fingerprint=None, fingerprint_popcount=None)
        )


def _reference(
    db: Database, run_id: str, sort: str, threshold: float | None, smarts: str | None
) -> list[tuple[int, float | None]]:
    """Brute force: every row, RDKit's own fingerprint and TanimotoSimilarity, then the sort."""
    generator = ecfp4_generator()
    query = generator.GetFingerprint(Chem.MolFromSmiles(QUERY))
    pattern = Chem.MolFromSmarts(smarts) if smarts else None
    with db.session() as session:
        rows = session.query(Molecule).filter(Molecule.run_id == run_id).all()
        keyed: list[tuple[Any, int, float | None]] = []
        for mol in rows:
            parsed = Chem.MolFromSmiles(mol.smiles)
            if parsed is None:
                continue
            if pattern is not None and not parsed.HasSubstructMatch(pattern):
                continue
            similarity = None
            if threshold is not None:
                similarity = DataStructs.TanimotoSimilarity(query, generator.GetFingerprint(parsed))
                if similarity < threshold:
                    continue
            name = sort.lstrip("-")
            value = mol.scores["qed"] if name == "scores.qed" else getattr(mol, name)
            keyed.append((value, mol.id, similarity))
    keyed.sort(reverse=sort.startswith("-"))
    return [(mol_id, similarity) for _, mol_id, similarity in keyed]


def _all_pages(db: Database, q: MoleculeQuery, cache: ChemCache | None) -> list[tuple[int, float | None]]:
    found: list[tuple[int, float | None]] = []
    with db.session() as session:
        while True:
            page = list_molecules(session, q, cache)
            assert len(page.items) <= q.limit and page.scanned <= q.max_scan
            found += [(mol.id, similarity) for mol, similarity in page.items]
            if page.next_cursor is None:
                return found
            q.cursor = page.next_cursor


@pytest.fixture
def run_id(db: Database) -> str:
    return _store(db, [*_blocks(300), UNREADABLE])


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("sort", ["-reward", "step", "scores.qed"])
def test_similarity_pages_equal_a_brute_force_rdkit_pass(
    db: Database, run_id: str, threshold: float, sort: str
) -> None:
    expected = _reference(db, run_id, sort, threshold, None)
    assert expected and (threshold < 1.0 or len(expected) == 1)
    one_page = MoleculeQuery(run_id, sort=sort, limit=1000, similar_to=QUERY, min_similarity=threshold)
    assert _all_pages(db, one_page, None) == expected  # ids in order and identical similarities
    small = MoleculeQuery(run_id, sort=sort, limit=7, similar_to=QUERY, min_similarity=threshold, max_scan=40)
    assert _all_pages(db, small, ChemCache()) == expected


def test_rows_without_a_stored_fingerprint_are_still_found(db: Database, run_id: str) -> None:
    expected = {t: _reference(db, run_id, "-reward", t, None) for t in (0.0, 0.25)}
    _forget_fingerprints(db, run_id, every=3)
    cache = ChemCache()
    for threshold, reference in expected.items():
        for limit, max_scan, chem_cache in ((1000, 50_000, None), (5, 60, cache), (5, 60, cache)):
            q = MoleculeQuery(
                run_id, limit=limit, similar_to=QUERY, min_similarity=threshold, max_scan=max_scan
            )
            assert _all_pages(db, q, chem_cache) == reference


@pytest.mark.parametrize("threshold", [None, 0.15])
def test_substructure_alone_and_with_similarity(db: Database, run_id: str, threshold: float | None) -> None:
    smarts = "c1ccccc1[NX3]"
    expected = _reference(db, run_id, "step", threshold, smarts)
    assert expected
    _forget_fingerprints(db, run_id, every=4)
    for cache in (None, ChemCache()):
        q = MoleculeQuery(
            run_id,
            sort="step",
            limit=4,
            smarts=smarts,
            max_scan=50,
            **({"similar_to": QUERY, "min_similarity": threshold} if threshold is not None else {}),
        )
        assert _all_pages(db, q, cache) == [(i, None if threshold is None else s) for i, s in expected]


def test_max_scan_bounds_each_request_and_counts_ruled_out_rows(db: Database, run_id: str) -> None:
    """A request passes over at most max_scan rows in sort order, rows the database ruled out by
    popcount included; its short page carries the cursor to go on from."""
    expected = [i for i, _ in _reference(db, run_id, "id", 0.4, None)]
    with db.session() as session:
        ids = sorted(session.scalars(select(Molecule.id).where(Molecule.run_id == run_id)))
    q = MoleculeQuery(run_id, sort="id", limit=50, similar_to=QUERY, min_similarity=0.4, max_scan=100)
    for chunk in (ids[:100], ids[100:200], ids[200:300]):
        with db.session() as session:
            page = list_molecules(session, q)
        assert page.scanned == 100 and page.next_cursor is not None
        assert [m.id for m, _ in page.items] == [i for i in expected if i in chunk]
        q.cursor = page.next_cursor
    with db.session() as session:
        last = list_molecules(session, q)
    assert last.scanned == 1 and last.next_cursor is None
    q.max_scan, q.cursor = 1000, None
    with db.session() as session:
        whole = list_molecules(session, q)
    assert whole.scanned == 301 and whole.next_cursor is None and [m.id for m, _ in whole.items] == expected


def test_a_cursor_exactly_when_rows_follow_the_page(db: Database) -> None:
    run_id = _store(db, ["CCCCCC", "CCCCCCC", "c1ccccc1N", "c1ccccc1O"])  # ids in this order

    def page(sort: str, limit: int, max_scan: int = 50_000) -> tuple[list[str], bool, int]:
        q = MoleculeQuery(run_id, sort=sort, limit=limit, smarts="c1ccccc1", max_scan=max_scan)
        with db.session() as session:
            found = list_molecules(session, q)
        return [m.smiles[-1] for m, _ in found.items], found.next_cursor is not None, found.scanned

    assert page("id", 1) == (["N"], True, 3)  # a row follows
    assert page("id", 2) == (["N", "O"], False, 4)  # full on the run's last row: no empty next page
    assert page("id", 3) == (["N", "O"], False, 4)
    assert page("-id", 2) == (["O", "N"], True, 2)
    assert page("id", 1, max_scan=3) == (["N"], True, 3)  # full on a window's last row, one follows
    assert page("id", 2, max_scan=4) == (["N", "O"], False, 4)  # … none follows
    assert page("id", 3, max_scan=2) == ([], True, 2)  # the bound: a short page and a cursor


def test_the_api_answers_with_stored_fingerprints(settings: Settings, db: Database, run_id: str) -> None:
    expected = _reference(db, run_id, "-reward", 0.3, None)
    with TestClient(create_app(settings, db)) as client:
        url = f"/api/v1/runs/{run_id}/molecules"
        answer = client.get(url, params={"similar_to": QUERY, "min_similarity": 0.3, "limit": 1000}).json()
    assert [(m["id"], m["similarity"]) for m in answer["items"]] == expected
    assert answer["next_cursor"] is None and answer["scanned"] == 301


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.3, 0.45, 0.7, 0.9, 1.0])
def test_popcount_bounds_never_exclude_a_match_and_values_equal_rdkit(threshold: float) -> None:
    generator = ecfp4_generator()
    smiles = _blocks(400)
    query = SimilarityQuery(QUERY, threshold)
    low, high = query.popcount_bounds()
    packed = np.frombuffer(b"".join(packed_ecfp4_bytes(s) or b"" for s in smiles), np.uint8).reshape(-1, 256)
    values = query.similarities(packed)
    reference = generator.GetFingerprint(Chem.MolFromSmiles(QUERY))
    for s, value in zip(smiles, values, strict=True):
        fp = generator.GetFingerprint(Chem.MolFromSmiles(s))
        assert value == DataStructs.TanimotoSimilarity(reference, fp)  # bit for bit, not approximately
        if value >= threshold:
            assert low <= fp.GetNumOnBits() and (high is None or fp.GetNumOnBits() <= high)


def test_empty_fingerprints_score_as_rdkit_scores_them() -> None:
    """Only a molecule without atoms has an empty ECFP4 (no SMILES the API accepts): RDKit scores two
    empty fingerprints 0.0 (0 / 0 taken as 0) and the search does too."""
    query = SimilarityQuery("C", 0.5)
    query.packed, query.popcount = np.zeros(256, np.uint8), 0
    assert query.popcount_bounds() == (0, 0)
    methane = np.frombuffer(packed_ecfp4_bytes("C") or b"", np.uint8)
    values = query.similarities(np.stack([np.zeros(256, np.uint8), methane]))
    empty = DataStructs.ExplicitBitVect(2048)
    methane_bits = ecfp4_generator().GetFingerprint(Chem.MolFromSmiles("C"))
    rdkit_values = [
        DataStructs.TanimotoSimilarity(empty, empty),
        DataStructs.TanimotoSimilarity(empty, methane_bits),
    ]
    assert values.tolist() == rdkit_values == [0.0, 0.0]
