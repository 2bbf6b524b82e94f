"""Scorers computed from the molecular graph with RDKit alone: QED, SA, descriptors, similarity,
substructures. Each takes plain settings (strings, numbers), never a component config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from rdkit import Chem, DataStructs
from rdkit.Chem import QED, rdMolDescriptors
from rdkit.Contrib.SA_Score import sascorer  # ships with RDKit's wheel; reads its table on first use

from reactions.smiles import parse_smiles_or_none
from synflow.rewards.base import MolScorer
from synflow.rewards.chem import fingerprint_function, mol_logp, mol_wt


class QedScorer(MolScorer):
    """RDKit's quantitative estimate of drug-likeness (Bickerton et al. 2012), already in [0, 1]."""

    def score_mol(self, mol: Chem.Mol) -> float:
        return float(QED.qed(mol))


def sa_to_unit(sa: float) -> float:
    """The documented mapping of Ertl's SA score (1 easy … 10 hard) to [0, 1]: ``(10 - sa) / 9``."""
    return (10.0 - sa) / 9.0


class SaScorer(MolScorer):
    """Synthetic accessibility (Ertl & Schuffenhauer 2009, RDKit Contrib) mapped by ``sa_to_unit``."""

    def raw_sa(self, mol: Chem.Mol) -> float:
        return float(sascorer.calculateScore(mol))

    def score_mol(self, mol: Chem.Mol) -> float:
        return sa_to_unit(self.raw_sa(mol))


def descriptor_functions() -> Mapping[str, Callable[[Chem.Mol], float]]:
    """The physico-chemical descriptors a ``physchem`` component can shape, by name."""
    md = rdMolDescriptors
    return MappingProxyType({
        "mw": mol_wt,
        "tpsa": md.CalcTPSA,
        "logp": mol_logp,
        "hbd": md.CalcNumHBD,
        "hba": md.CalcNumHBA,
        "rotatable_bonds": md.CalcNumRotatableBonds,
        "rings": md.CalcNumRings,
        "aromatic_rings": md.CalcNumAromaticRings,
        "heavy_atoms": lambda m: m.GetNumHeavyAtoms(),
        "fraction_sp3": md.CalcFractionCSP3,
        "formal_charge": Chem.GetFormalCharge,
    })


class PhyschemScorer(MolScorer):
    def __init__(self, descriptor: str) -> None:
        self._fn = descriptor_functions()[descriptor]

    def score_mol(self, mol: Chem.Mol) -> float:
        return float(self._fn(mol))


class SimilarityScorer(MolScorer):
    """Tanimoto similarity to reference molecules, the maximum (or mean) over the references."""

    def __init__(
        self, references: Sequence[str], kind: str, radius: int, n_bits: int,
        counts: bool, aggregate: str,
    ) -> None:
        self._fp = fingerprint_function(kind, radius, n_bits, counts)
        self._refs = []
        for smiles in references:
            mol = parse_smiles_or_none(smiles)
            if mol is None:
                raise ValueError(f"invalid reference SMILES: {smiles!r}")
            self._refs.append(self._fp(mol))
        self._bulk = DataStructs.BulkTanimotoSimilarity
        self._reduce = max if aggregate == "max" else (lambda xs: sum(xs) / len(xs))

    def score_mol(self, mol: Chem.Mol) -> float:
        return float(self._reduce(self._bulk(self._fp(mol), self._refs)))


class SubstructureScorer(MolScorer):
    """1 when every required pattern matches and no forbidden one does.

    Each violated pattern (a required one missing, a forbidden one present) multiplies the score by
    ``penalty``; ``penalty = 0`` zeroes it (a hard filter).
    """

    def __init__(
        self, required: Sequence[str], forbidden: Sequence[str], penalty: float, use_chirality: bool,
    ) -> None:
        self._required = [_smarts(s) for s in required]
        self._forbidden = [_smarts(s) for s in forbidden]
        self._penalty = penalty
        self._chiral = use_chirality

    def violations(self, mol: Chem.Mol) -> int:
        missing = sum(not mol.HasSubstructMatch(p, useChirality=self._chiral) for p in self._required)
        present = sum(mol.HasSubstructMatch(p, useChirality=self._chiral) for p in self._forbidden)
        return missing + present

    def score_mol(self, mol: Chem.Mol) -> float:
        n = self.violations(mol)
        return 1.0 if n == 0 else float(self._penalty ** n)


def _smarts(pattern: str) -> Chem.Mol:
    query = Chem.MolFromSmarts(pattern)
    if query is None:
        raise ValueError(f"invalid SMARTS: {pattern!r}")
    return query
