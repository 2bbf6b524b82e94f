"""Fingerprints for the similarity scorers (RDKit); SMILES parsing lives in ``reactions.smiles``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rdkit import Chem, DataStructs
from rdkit.Chem import Crippen, Descriptors, rdFingerprintGenerator, rdMolDescriptors

# The kinds ``fingerprint_function`` builds (``components.FingerprintKind`` lists the same names).
FINGERPRINT_KINDS = ("morgan", "feature_morgan", "atom_pair", "topological_torsion", "rdkit", "maccs")
Fingerprint = Any  # an RDKit ExplicitBitVect or sparse count vector
FingerprintFn = Callable[[Chem.Mol], Fingerprint]

# RDKit defines these two as lambdas its type stubs leave out; typed here once.
mol_logp: Callable[[Chem.Mol], float] = Crippen.MolLogP  # type: ignore[attr-defined]
mol_wt: Callable[[Chem.Mol], float] = Descriptors.MolWt  # type: ignore[attr-defined]


def fingerprint_function(
    kind: str, radius: int = 2, n_bits: int = 2048, counts: bool = False,
) -> FingerprintFn:
    """A function mol → fingerprint; Tanimoto on two of them is the similarity.

    With ``counts`` the Morgan, atom-pair and torsion fingerprints are unfolded sparse count
    vectors (what GuacaMol and TDC use); without, folded bit vectors of ``n_bits``.
    ``radius`` only applies to the Morgan kinds; ``rdkit`` uses paths up to 7 bonds.
    """
    if kind == "maccs":
        return rdMolDescriptors.GetMACCSKeysFingerprint  # what MACCSkeys.GenMACCSKeys is
    generator = _generator(kind, radius, n_bits)
    if counts and kind != "rdkit":
        return generator.GetSparseCountFingerprint
    return generator.GetFingerprint


def _generator(kind: str, radius: int, n_bits: int) -> Any:
    g = rdFingerprintGenerator
    if kind == "morgan":
        return g.GetMorganGenerator(radius=radius, fpSize=n_bits)
    if kind == "feature_morgan":
        return g.GetMorganGenerator(
            radius=radius, fpSize=n_bits, atomInvariantsGenerator=g.GetMorganFeatureAtomInvGen(),
        )
    if kind == "atom_pair":
        return g.GetAtomPairGenerator(maxDistance=10, fpSize=n_bits)
    if kind == "topological_torsion":
        return g.GetTopologicalTorsionGenerator(fpSize=n_bits)
    if kind == "rdkit":
        return g.GetRDKitFPGenerator(maxPath=7, fpSize=n_bits)
    raise ValueError(f"unknown fingerprint kind {kind!r}")


def tanimoto(a: Fingerprint, b: Fingerprint) -> float:
    return float(DataStructs.TanimotoSimilarity(a, b))


def bulk_tanimoto(fp: Fingerprint, references: list[Fingerprint]) -> list[float]:
    return list(DataStructs.BulkTanimotoSimilarity(fp, references))
