"""The vectorised 2D pharmacophore fingerprint sets exactly RDKit's bits."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from rdkit import Chem, RDConfig, rdBase
from rdkit.Chem import ChemicalFeatures
from rdkit.Chem.Pharm2D import Generate, Gobbi_Pharm2D
from rdkit.Chem.Pharm2D.SigFactory import SigFactory

from synflow.rewards.pharm2d import Pharm2DFingerprint
from synflow.rewards.pmo import HOP_PHARMACOPHORE, make_fingerprints
from tests.synflow.rewards.test_pmo import zinc_sample

# edge cases: no features, one feature, fragments (unconnected distances), charges, the hop target
EDGE = ["C", "CC", "O", "OCCO", "CCO.c1ccccc1N", "c1ccccc1.CCN", "[NH3+]CC(=O)[O-]", "FC(F)(F)c1ccc(Cl)cc1",
        "OC(=O)CCCCCCCCCCCCCCCCC(=O)O", HOP_PHARMACOPHORE, "C1CC2CCC1CC2", "P(=O)(O)(O)OCC[Si](C)(C)C"]


def joined(a: Chem.Mol, b: Chem.Mol) -> Chem.Mol | None:
    """Two molecules bonded at their first atoms with a hydrogen: drug-sized becomes 40-60 atoms,
    the size the hop tasks reward and where RDKit's generator is slowest (None if that atom's
    hydrogen was an explicit one, e.g. [nH], and the valence breaks)."""
    mol = Chem.RWMol(Chem.CombineMols(a, b))
    ia = next(x.GetIdx() for x in a.GetAtoms() if x.GetTotalNumHs() > 0)
    ib = next(x.GetIdx() for x in b.GetAtoms() if x.GetTotalNumHs() > 0) + a.GetNumAtoms()
    mol.AddBond(ia, ib, Chem.BondType.SINGLE)
    return Chem.MolFromSmiles(Chem.MolToSmiles(mol.GetMol()))


def molecules(shared: Path | None) -> list[Chem.Mol]:
    mols = [Chem.MolFromSmiles(s) for s in EDGE]
    if shared is not None:
        zinc = [Chem.MolFromSmiles(s) for s in zinc_sample(shared, 60)]
        rng = random.Random(0)
        pairs = (joined(*rng.sample(zinc, 2)) for _ in range(30))
        mols += zinc[:40] + [m for m in pairs if m is not None][:12]
    return mols


def base_features_factory(prune: bool) -> SigFactory:
    """RDKit's BaseFeatures: multi-atom features (rings, groups), unlike Gobbi's single atoms."""
    features = ChemicalFeatures.BuildFeatureFactory(os.path.join(RDConfig.RDDataDir, "BaseFeatures.fdef"))
    factory = SigFactory(features, minPointCount=2, maxPointCount=3, trianglePruneBins=prune)
    factory.SetBins([(1, 3), (3, 6), (6, 10), (10, 100)])
    factory.Init()
    return factory


@pytest.fixture(scope="module")
def mols(request: pytest.FixtureRequest) -> list[Chem.Mol]:
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        shared = None
    return molecules(shared)


@pytest.mark.parametrize("name", ["gobbi", "base_features"])
def test_bits_equal_rdkits_generator(name: str, mols: list[Chem.Mol]) -> None:
    factory = Gobbi_Pharm2D.factory if name == "gobbi" else base_features_factory(prune=False)
    fast = Pharm2DFingerprint(factory)
    with rdBase.BlockLogs():
        for mol in mols:
            bits = fast.bits(mol)
            assert bits is not None  # every scaffold exists: no molecule needs RDKit's generator
            expected = list(Generate.Gen2DFingerprint(mol, factory).GetOnBits())
            assert bits.tolist() == expected, Chem.MolToSmiles(mol)
            fp = fast(mol)
            assert fp.GetNumBits() == factory.GetSigSize() and list(fp.GetOnBits()) == expected


def test_a_distance_triple_without_a_scaffold_is_left_to_rdkit() -> None:
    """With triangle pruning, minimum distances between multi-atom features can bin to a pruned
    scaffold: RDKit's generator raises there, and so does ours (it hands the molecule over)."""
    factory = base_features_factory(prune=True)
    fast = Pharm2DFingerprint(factory)
    mol = Chem.MolFromSmiles("C[C@H](CSc1ccc(C(=O)N(C)C)cn1)C(=O)[O-]")
    with pytest.raises(IndexError, match="distance bin not found"):
        Generate.Gen2DFingerprint(mol, factory)
    assert fast.bits(mol) is None
    with pytest.raises(IndexError, match="distance bin not found"):
        fast(mol)


def test_the_hop_oracles_use_it() -> None:
    phco = make_fingerprints().phco
    assert isinstance(phco, Pharm2DFingerprint) and phco.factory is Gobbi_Pharm2D.factory


def test_unsupported_factories_are_refused() -> None:
    counting = base_features_factory(prune=False)
    counting.useCounts = True
    with pytest.raises(ValueError, match="bit-vector"):
        Pharm2DFingerprint(counting)
