"""Keeping targets and their close analogues out of a molecule list (real RDKit fingerprints)."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from reactions.similarity import (
    DEFAULT_ANALOGUE_THRESHOLD,
    exclude_similar,
    packed_ecfp4,
    packed_tanimoto,
)

CELECOXIB = "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"
CELECOXIB_REWRITTEN = "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1"  # the same molecule
N_METHYL_CELECOXIB = "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(=O)(=O)NC)cc2)cc1"  # ECFP4 Tanimoto 0.745
PYRAZOLE_METHYL_CELECOXIB = "Cc1ccc(-c2c(C)c(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1"  # 0.62
DECANE = "CCCCCCCCCC"
MENTHOL = "CC(C)C1CCC(C)CC1O"


def ecfp4_tanimoto(a: str, b: str) -> float:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fa, fb = (generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in (a, b))
    return DataStructs.TanimotoSimilarity(fa, fb)


def test_the_fixture_molecules_sit_where_the_tests_need_them() -> None:
    assert ecfp4_tanimoto(CELECOXIB, CELECOXIB_REWRITTEN) == 1.0
    assert 0.7 <= ecfp4_tanimoto(CELECOXIB, N_METHYL_CELECOXIB) < 0.8
    assert 0.5 < ecfp4_tanimoto(CELECOXIB, PYRAZOLE_METHYL_CELECOXIB) < 0.7
    assert ecfp4_tanimoto(CELECOXIB, DECANE) < 0.1


def test_removes_copies_and_analogues_and_keeps_the_rest() -> None:
    molecules = [DECANE, CELECOXIB_REWRITTEN, PYRAZOLE_METHYL_CELECOXIB, N_METHYL_CELECOXIB, CELECOXIB]
    result = exclude_similar(molecules, [MENTHOL, CELECOXIB])
    assert result.threshold == DEFAULT_ANALOGUE_THRESHOLD == 0.7
    assert result.kept == [0, 2]
    assert result.kept_smiles(molecules) == [DECANE, PYRAZOLE_METHYL_CELECOXIB]
    assert [r.position for r in result.removed] == [1, 3, 4]
    by_position = {r.position: r for r in result.removed}
    assert by_position[1].smiles == CELECOXIB_REWRITTEN
    assert by_position[1].target == CELECOXIB
    assert by_position[1].similarity == pytest.approx(1.0)
    assert by_position[3].similarity == pytest.approx(ecfp4_tanimoto(CELECOXIB, N_METHYL_CELECOXIB))
    assert by_position[4].similarity == pytest.approx(1.0)
    assert result.unreadable == []


def test_threshold_is_inclusive_and_adjustable() -> None:
    similarity = ecfp4_tanimoto(CELECOXIB, N_METHYL_CELECOXIB)
    assert exclude_similar([N_METHYL_CELECOXIB], [CELECOXIB], threshold=similarity).kept == []
    assert exclude_similar([N_METHYL_CELECOXIB], [CELECOXIB], threshold=similarity + 1e-6).kept == [0]
    assert exclude_similar([PYRAZOLE_METHYL_CELECOXIB], [CELECOXIB], threshold=0.6).kept == []


def test_names_the_closest_target() -> None:
    result = exclude_similar([MENTHOL], [CELECOXIB, "CC(C)C1CCC(C)CC1", MENTHOL])
    assert [(r.target, r.similarity) for r in result.removed] == [(MENTHOL, 1.0)]


def test_unreadable_molecules_are_kept_and_reported_and_bad_targets_refused() -> None:
    result = exclude_similar(["not a smiles", DECANE], [CELECOXIB])
    assert result.kept == [0, 1]
    assert result.unreadable == [0]
    with pytest.raises(ValueError, match="target"):
        exclude_similar([DECANE], ["C1CC"])
    with pytest.raises(ValueError, match="threshold"):
        exclude_similar([DECANE], [CELECOXIB], threshold=0.0)


def test_no_targets_keeps_everything() -> None:
    assert exclude_similar([DECANE, CELECOXIB], []).kept == [0, 1]


def test_packed_tanimoto_matches_rdkit() -> None:
    molecules = [CELECOXIB_REWRITTEN, N_METHYL_CELECOXIB, PYRAZOLE_METHYL_CELECOXIB, DECANE]
    packed = np.stack([packed_ecfp4(s) for s in molecules])
    expected = [ecfp4_tanimoto(CELECOXIB, s) for s in molecules]
    np.testing.assert_allclose(packed_tanimoto(packed, packed_ecfp4(CELECOXIB)), expected)


def test_packed_ecfp4_is_what_a_library_stores() -> None:
    from reactions.library import library_from_smiles

    library = library_from_smiles([CELECOXIB, MENTHOL], workers=1)
    for row, smiles in enumerate([CELECOXIB, MENTHOL]):
        np.testing.assert_array_equal(library.fingerprints[row], packed_ecfp4(smiles))


def test_packed_bytes_popcount_and_both_popcount_paths_agree() -> None:
    """What the service stores: packed_ecfp4 as bytes, its popcount RDKit's on-bit count; the NumPy 2
    word popcount and the byte-table fallback give the same counts."""
    from reactions.similarity import _POPCOUNT, _row_popcounts, ecfp4_generator, packed_ecfp4_bytes, popcount

    packed = packed_ecfp4_bytes(CELECOXIB)
    assert packed is not None and packed == packed_ecfp4(CELECOXIB).tobytes() and len(packed) == 256
    assert popcount(packed) == ecfp4_generator().GetFingerprint(Chem.MolFromSmiles(CELECOXIB)).GetNumOnBits()
    assert packed_ecfp4_bytes("C1CC") is None  # an unclosed ring
    rows = np.random.default_rng(0).integers(0, 256, (50, 256), dtype=np.uint8)
    np.testing.assert_array_equal(_row_popcounts(rows), _POPCOUNT[rows].sum(axis=1))
