"""RDKit helpers shared by the components: parsing, canonical SMILES, fingerprints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import MACCSkeys, rdFingerprintGenerator

FingerprintKind = Literal["morgan", "feature_morgan", "atom_pair", "topological_torsion", "rdkit", "maccs"]
Fingerprint = Any  # an RDKit ExplicitBitVect or sparse count vector
FingerprintFn = Callable[[Chem.Mol], Fingerprint]


def parse_smiles(smiles: str) -> Chem.Mol | None:
    """A sanitised molecule, or None for anything RDKit rejects (never raises)."""
    if not smiles or not smiles.strip():
        return None
    with rdBase.BlockLogs():
        try:
            return Chem.MolFromSmiles(smiles.strip())
        except Exception:  # RDKit raises on a few pathological inputs instead of returning None
            return None


def canonical_smiles(smiles: str) -> str | None:
    """RDKit's canonical isomeric SMILES, or None when the input does not parse."""
    mol = parse_smiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def fingerprint_function(
    kind: FingerprintKind, radius: int = 2, n_bits: int = 2048, counts: bool = False,
) -> FingerprintFn:
    """A function mol → fingerprint; Tanimoto on two of them is the similarity.

    With ``counts`` the Morgan, atom-pair and torsion fingerprints are unfolded sparse count
    vectors (what GuacaMol and TDC use); without, folded bit vectors of ``n_bits``.
    ``radius`` only applies to the Morgan kinds; ``rdkit`` uses paths up to 7 bonds.
    """
    if kind == "maccs":
        return MACCSkeys.GenMACCSKeys
    generator = _generator(kind, radius, n_bits)
    if counts and kind != "rdkit":
        return generator.GetSparseCountFingerprint
    return generator.GetFingerprint


def _generator(kind: FingerprintKind, radius: int, n_bits: int) -> Any:
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
