"""The 20 PMO oracles that need no downloaded model, written from their published definitions.

Sources: GuacaMol (Brown et al. 2019, ``guacamol/standard_benchmarks.py`` and
``goal_directed_benchmark`` suite v2), TDC's ``tdc/chem_utils/oracle/oracle.py`` (Huang et al.) and
PMO (Gao et al. 2022), whose published numbers were computed with TDC. Where TDC and GuacaMol
differ, TDC is followed; the differences:

* Fingerprints are TDC's (the same as GuacaMol's): ECFP4/ECFP6 = unfolded Morgan count vectors of
  radius 2/3, FCFP4 = feature-invariant Morgan radius 2 counts, AP = atom-pair counts with paths
  up to 10 bonds, PHCO = Gobbi 2D pharmacophores; Tanimoto on the count vectors. They are
  generated here with RDKit's ``rdFingerprintGenerator`` (the old ``GetMorganFingerprint``
  functions are deprecated); the values are identical (a test checks this). PHCO is RDKit's
  ``Gen2DFingerprint`` with the Gobbi factory, computed by ``synflow.rewards.pharm2d`` with the
  same bits (tested) about 30x faster on the hop tasks' molecules.
* Isomer scoring (``isomers_*``, and inside ``zaleplon_mpo`` / ``sitagliptin_mpo``): current TDC
  counts every element of the molecule with explicit hydrogens (Gaussian, σ = 1) and the total
  atom count including hydrogens (Gaussian, σ = 2), geometric mean: the same as GuacaMol's
  ``IsomerScoringFunction``. TDC ≤ 0.3 (``Isomer_scoring_prev``) counted the "total atoms" by
  running its formula regex over the SMILES *string*; ``legacy_isomers=True`` reproduces that
  (on our canonical SMILES) for comparison with old numbers.
* Invalid SMILES: TDC raises; PMO's wrapper scores them 0. Here the reward layer gives 0 before an
  oracle is called.
* ``median1``/``median2``: TDC's geometric mean of two similarities: ECFP4 to camphor and menthol,
  ECFP6 to tadalafil and sildenafil.
* No SA term anywhere: none of these oracles includes synthetic accessibility.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import QED, Descriptors, rdFingerprintGenerator, rdMolDescriptors
from rdkit.Chem.Pharm2D import Gobbi_Pharm2D

from reactions.smiles import parse_smiles_or_none
from synflow.rewards.base import MolScorer
from synflow.rewards.chem import mol_logp
from synflow.rewards.pharm2d import Pharm2DFingerprint

# --- GuacaMol/TDC score modifiers -----------------------------------------------------------------


def gaussian(x: float, mu: float, sigma: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sigma) ** 2)


def min_gaussian(x: float, mu: float, sigma: float) -> float:
    """1 for x <= mu, Gaussian decay above (GuacaMol's MinGaussianModifier)."""
    return gaussian(max(x, mu), mu, sigma)


def max_gaussian(x: float, mu: float, sigma: float) -> float:
    """1 for x >= mu, Gaussian decay below (GuacaMol's MaxGaussianModifier)."""
    return gaussian(min(x, mu), mu, sigma)


def clipped(x: float, upper: float, lower: float = 0.0) -> float:
    """Linear from 0 at ``lower`` to 1 at ``upper``, clipped (GuacaMol's ClippedScoreModifier)."""
    return min(1.0, max(0.0, (x - lower) / (upper - lower)))


def geometric_mean(values: Sequence[float]) -> float:
    if any(v <= 0.0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


# --- fingerprints ---------------------------------------------------------------------------------

Fp = Callable[[Chem.Mol], Any]  # an RDKit fingerprint


@dataclass(frozen=True)
class Fingerprints:
    """TDC's four fingerprint types plus the Gobbi pharmacophore one, built once per oracle."""

    ecfp4: Fp
    ecfp6: Fp
    fcfp4: Fp
    ap: Fp
    phco: Fp


def make_fingerprints() -> Fingerprints:
    g = rdFingerprintGenerator
    feature_inv = g.GetMorganFeatureAtomInvGen()
    return Fingerprints(
        ecfp4=g.GetMorganGenerator(radius=2).GetSparseCountFingerprint,
        ecfp6=g.GetMorganGenerator(radius=3).GetSparseCountFingerprint,
        fcfp4=g.GetMorganGenerator(radius=2, atomInvariantsGenerator=feature_inv).GetSparseCountFingerprint,
        ap=g.GetAtomPairGenerator(maxDistance=10).GetSparseCountFingerprint,
        phco=Pharm2DFingerprint(Gobbi_Pharm2D.factory),
    )


class Similarity:
    """Tanimoto similarity of a molecule to a fixed target under one fingerprint."""

    def __init__(self, target_smiles: str, fp: Fp) -> None:
        self._fp = fp
        self._target = fp(Chem.MolFromSmiles(target_smiles))

    def __call__(self, mol: Chem.Mol) -> float:
        return float(DataStructs.TanimotoSimilarity(self._target, self._fp(mol)))


# --- isomer scoring -------------------------------------------------------------------------------


def parse_formula(formula: str) -> list[tuple[str, int]]:
    """``"C9H10N2O2PF2Cl"`` → ``[("C", 9), ("H", 10), …]`` (TDC's regex, also GuacaMol's)."""
    return [(el, int(n) if n else 1) for el, n in re.findall(r"([A-Z][a-z]*)(\d*)", formula)]


class IsomerScore:
    """Closeness to a molecular formula: geometric mean of Gaussians on element counts and total."""

    def __init__(self, formula: str, legacy: bool = False) -> None:
        self._elements = parse_formula(formula)
        self._total = sum(n for _, n in self._elements)
        self._legacy = legacy

    def __call__(self, mol: Chem.Mol) -> float:
        with_h = Chem.AddHs(mol)
        counts: dict[str, int] = {}
        for atom in with_h.GetAtoms():
            counts[atom.GetSymbol()] = counts.get(atom.GetSymbol(), 0) + 1
        scores = [gaussian(counts.get(el, 0), n, 1.0) for el, n in self._elements]
        scores.append(gaussian(self._total_atoms(mol, with_h), self._total, 2.0))
        return geometric_mean(scores)

    def _total_atoms(self, mol: Chem.Mol, with_h: Chem.Mol) -> int:
        if self._legacy:  # TDC <= 0.3: the formula regex run over the SMILES text itself
            return sum(n for _, n in parse_formula(Chem.MolToSmiles(mol)))
        return with_h.GetNumAtoms()


def smarts_present(pattern: Chem.Mol, mol: Chem.Mol) -> float:
    return 1.0 if mol.HasSubstructMatch(pattern) else 0.0


# --- the oracles ----------------------------------------------------------------------------------

CELECOXIB = "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"
TROGLITAZONE = "Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O"
THIOTHIXENE = "CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1"
ALBUTEROL = "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1"
MESTRANOL = "COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1"
CAMPHOR = "CC1(C)C2CCC1(C)C(=O)C2"
MENTHOL = "CC(C)C1CCC(C)CC1O"
TADALAFIL = "O=C1N(CC(N2C1CC3=C(C2C4=CC5=C(OCO5)C=C4)NC6=C3C=CC=C6)=O)C"
SILDENAFIL = "CCCC1=NN(C2=C1N=C(NC2=O)C3=C(C=CC(=C3)S(=O)(=O)N4CCN(CC4)C)OCC)C"
OSIMERTINIB = "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34"
FEXOFENADINE = "CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN2CCC(CC2)C(O)(c3ccccc3)c4ccccc4"
RANOLAZINE = "COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2"
PERINDOPRIL = "O=C(OCC)C(NC(C(=O)N1C(C(=O)O)CC2CCCCC12)C)CCC"
AMLODIPINE = r"Clc1ccccc1C2C(=C(/N/C(=C2/C(=O)OCC)COCCN)C)\C(=O)OC"
ZALEPLON = "O=C(C)N(CC)C1=CC=CC(C2=CC=NC3=C(C=NN23)C#N)=C1"
SITAGLIPTIN = "Fc1cc(c(F)cc1F)CC(N)CC(=O)N3Cc2nnc(n2CC3)C(F)(F)F"
# valsartan_smarts scores against sitagliptin's properties (GuacaMol's "valsartan SMARTS" task)
SITAGLIPTIN_FOR_VALSARTAN = "NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F"
VALSARTAN_SMARTS = "CN(C=O)Cc1ccc(c2ccccc2)cc1"
HOP_PHARMACOPHORE = "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C"
HOP_SCAFFOLD = "[#7]-c1n[c;h1]nc2[c;h1]c(-[#8])[c;h0][c;h1]c12"

# Every molecule an oracle compares candidates with by fingerprint similarity, and the tasks that
# do. A building-block library made from PMO's screening set (ZINC250k) keeps these and their close
# analogues out (scripts/make_default_library.py --exclude-targets; reactions.similarity); the
# library benchmark measures how close a library's blocks come to them. sitagliptin_mpo's target
# and valsartan_smarts' property reference are one molecule written two ways (the latter uses only
# its logP, TPSA and Bertz index); VALSARTAN_SMARTS and HOP_SCAFFOLD are substructure queries.
PMO_TARGETS: Mapping[str, str] = MappingProxyType({
    "albuterol": ALBUTEROL,
    "mestranol": MESTRANOL,
    "celecoxib": CELECOXIB,
    "troglitazone": TROGLITAZONE,
    "thiothixene": THIOTHIXENE,
    "amlodipine": AMLODIPINE,
    "fexofenadine": FEXOFENADINE,
    "osimertinib": OSIMERTINIB,
    "perindopril": PERINDOPRIL,
    "ranolazine": RANOLAZINE,
    "sitagliptin": SITAGLIPTIN,
    "zaleplon": ZALEPLON,
    "camphor": CAMPHOR,
    "menthol": MENTHOL,
    "tadalafil": TADALAFIL,
    "sildenafil": SILDENAFIL,
    "hop_pharmacophore": HOP_PHARMACOPHORE,
})
PMO_TARGET_TASKS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "albuterol": ("albuterol_similarity",),
    "mestranol": ("mestranol_similarity",),
    "celecoxib": ("celecoxib_rediscovery",),
    "troglitazone": ("troglitazone_rediscovery",),
    "thiothixene": ("thiothixene_rediscovery",),
    "amlodipine": ("amlodipine_mpo",),
    "fexofenadine": ("fexofenadine_mpo",),
    "osimertinib": ("osimertinib_mpo",),
    "perindopril": ("perindopril_mpo",),
    "ranolazine": ("ranolazine_mpo",),
    "sitagliptin": ("sitagliptin_mpo", "valsartan_smarts"),
    "zaleplon": ("zaleplon_mpo",),
    "camphor": ("median1",),
    "menthol": ("median1",),
    "tadalafil": ("median2",),
    "sildenafil": ("median2",),
    "hop_pharmacophore": ("deco_hop", "scaffold_hop"),
})


class FunctionOracle(MolScorer):
    """An oracle given as a function of one molecule."""

    def __init__(self, fn: Callable[[Chem.Mol], float]) -> None:
        self._fn = fn

    def score_mol(self, mol: Chem.Mol) -> float:
        return float(self._fn(mol))


def _rediscovery(target: str) -> Callable[[Fingerprints, bool], Callable[[Chem.Mol], float]]:
    return lambda fps, legacy: Similarity(target, fps.ecfp4)


def _similarity(target: str, kind: str) -> Callable[[Fingerprints, bool], Callable[[Chem.Mol], float]]:
    def build(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
        sim = Similarity(target, getattr(fps, kind))
        return lambda mol: clipped(sim(mol), upper=0.75)

    return build


def _median(a: str, b: str, kind: str) -> Callable[[Fingerprints, bool], Callable[[Chem.Mol], float]]:
    def build(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
        sim_a, sim_b = Similarity(a, getattr(fps, kind)), Similarity(b, getattr(fps, kind))
        return lambda mol: geometric_mean([sim_a(mol), sim_b(mol)])

    return build


def _osimertinib(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    fcfp4, ecfp6 = Similarity(OSIMERTINIB, fps.fcfp4), Similarity(OSIMERTINIB, fps.ecfp6)
    return lambda mol: geometric_mean([
        max_gaussian(rdMolDescriptors.CalcTPSA(mol), 100.0, 10.0),
        min_gaussian(mol_logp(mol), 1.0, 1.0),
        clipped(fcfp4(mol), upper=0.8),
        min_gaussian(ecfp6(mol), 0.85, 0.1),
    ])


def _fexofenadine(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    ap = Similarity(FEXOFENADINE, fps.ap)
    return lambda mol: geometric_mean([
        max_gaussian(rdMolDescriptors.CalcTPSA(mol), 90.0, 10.0),
        min_gaussian(mol_logp(mol), 4.0, 1.0),
        clipped(ap(mol), upper=0.8),
    ])


def _count_element(mol: Chem.Mol, symbol: str) -> int:
    return sum(1 for atom in mol.GetAtoms() if atom.GetSymbol() == symbol)


def _ranolazine(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    ap = Similarity(RANOLAZINE, fps.ap)
    return lambda mol: geometric_mean([
        max_gaussian(rdMolDescriptors.CalcTPSA(mol), 95.0, 20.0),
        max_gaussian(mol_logp(mol), 7.0, 1.0),
        clipped(ap(mol), upper=0.7),
        gaussian(_count_element(mol, "F"), 1.0, 1.0),
    ])


def _perindopril(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    sim = Similarity(PERINDOPRIL, fps.ecfp4)
    return lambda mol: geometric_mean([
        sim(mol), gaussian(rdMolDescriptors.CalcNumAromaticRings(mol), 2.0, 0.5),
    ])


def _amlodipine(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    sim = Similarity(AMLODIPINE, fps.ecfp4)
    return lambda mol: geometric_mean([sim(mol), gaussian(rdMolDescriptors.CalcNumRings(mol), 3.0, 0.5)])


def _zaleplon(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    sim, isomer = Similarity(ZALEPLON, fps.ecfp4), IsomerScore("C19H17N3O2", legacy)
    return lambda mol: geometric_mean([sim(mol), isomer(mol)])


def _sitagliptin(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    target = Chem.MolFromSmiles(SITAGLIPTIN)
    logp, tpsa = mol_logp(target), rdMolDescriptors.CalcTPSA(target)
    sim, isomer = Similarity(SITAGLIPTIN, fps.ecfp4), IsomerScore("C16H15F6N5O", legacy)
    return lambda mol: geometric_mean([
        gaussian(sim(mol), 0.0, 0.1),  # TDC/GuacaMol: be *dissimilar* to sitagliptin…
        gaussian(mol_logp(mol), logp, 0.2),  # …with its logP, TPSA and formula
        gaussian(rdMolDescriptors.CalcTPSA(mol), tpsa, 5.0),
        isomer(mol),
    ])


def _valsartan(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    pattern = Chem.MolFromSmarts(VALSARTAN_SMARTS)
    target = Chem.MolFromSmiles(SITAGLIPTIN_FOR_VALSARTAN)
    logp, tpsa = mol_logp(target), rdMolDescriptors.CalcTPSA(target)
    bertz = Descriptors.BertzCT(target)
    return lambda mol: geometric_mean([
        smarts_present(pattern, mol),
        gaussian(rdMolDescriptors.CalcTPSA(mol), tpsa, 5.0),
        gaussian(mol_logp(mol), logp, 0.2),
        gaussian(Descriptors.BertzCT(mol), bertz, 30.0),
    ])


def _deco_hop(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    sim = Similarity(HOP_PHARMACOPHORE, fps.phco)
    deco1, deco2 = Chem.MolFromSmarts("CS([#6])(=O)=O"), Chem.MolFromSmarts("[#7]-c1ccc2ncsc2c1")
    scaffold = Chem.MolFromSmarts(HOP_SCAFFOLD)
    return lambda mol: float(np.mean([
        clipped(sim(mol), upper=0.85),
        1.0 - smarts_present(deco1, mol),
        1.0 - smarts_present(deco2, mol),
        smarts_present(scaffold, mol),
    ]))


def _scaffold_hop(fps: Fingerprints, legacy: bool) -> Callable[[Chem.Mol], float]:
    sim = Similarity(HOP_PHARMACOPHORE, fps.phco)
    deco = Chem.MolFromSmarts("[#6]-[#6]-[#6]-[#8]-[#6]~[#6]~[#6]~[#6]~[#6]-[#7]-c1ccc2ncsc2c1")
    scaffold = Chem.MolFromSmarts(HOP_SCAFFOLD)
    return lambda mol: float(np.mean([
        clipped(sim(mol), upper=0.75),
        smarts_present(deco, mol),
        1.0 - smarts_present(scaffold, mol),
    ]))


def _isomers(formula: str) -> Callable[[Fingerprints, bool], Callable[[Chem.Mol], float]]:
    return lambda fps, legacy: IsomerScore(formula, legacy)


OracleBuilder = Callable[[Fingerprints, bool], Callable[[Chem.Mol], float]]


def pmo_tasks() -> Mapping[str, OracleBuilder]:
    """The 20 offline PMO tasks by their TDC names (an immutable mapping of builders)."""
    return MappingProxyType({
        "albuterol_similarity": _similarity(ALBUTEROL, "fcfp4"),
        "mestranol_similarity": _similarity(MESTRANOL, "ap"),
        "celecoxib_rediscovery": _rediscovery(CELECOXIB),
        "troglitazone_rediscovery": _rediscovery(TROGLITAZONE),
        "thiothixene_rediscovery": _rediscovery(THIOTHIXENE),
        "amlodipine_mpo": _amlodipine,
        "fexofenadine_mpo": _fexofenadine,
        "osimertinib_mpo": _osimertinib,
        "perindopril_mpo": _perindopril,
        "ranolazine_mpo": _ranolazine,
        "sitagliptin_mpo": _sitagliptin,
        "zaleplon_mpo": _zaleplon,
        "median1": _median(CAMPHOR, MENTHOL, "ecfp4"),
        "median2": _median(TADALAFIL, SILDENAFIL, "ecfp6"),
        "isomers_c7h8n2o2": _isomers("C7H8N2O2"),
        "isomers_c9h10n2o2pf2cl": _isomers("C9H10N2O2PF2Cl"),
        "deco_hop": _deco_hop,
        "scaffold_hop": _scaffold_hop,
        "valsartan_smarts": _valsartan,
        "qed": lambda fps, legacy: QED.qed,
    })


def pmo_oracle(task: str, legacy_isomers: bool = False) -> FunctionOracle:
    """Build the oracle for a TDC task name (``osimertinib_mpo``, ``median1``, …)."""
    tasks = pmo_tasks()
    if task not in tasks:
        raise KeyError(f"unknown PMO task {task!r}; known: {', '.join(sorted(tasks))}")
    return FunctionOracle(tasks[task](make_fingerprints(), legacy_isomers))


def score_smiles(task: str, smiles: Sequence[str]) -> list[float]:
    """Score SMILES with one oracle, 0 for invalid ones (a convenience for scripts and tests)."""
    oracle = pmo_oracle(task)
    return [0.0 if (m := parse_smiles_or_none(s)) is None else oracle.score_mol(m) for s in smiles]
