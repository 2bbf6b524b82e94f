"""``parse_smiles`` gives the molecule ``MolFromSmiles`` gives, stereo included."""

from __future__ import annotations

import pytest
from rdkit import Chem

from reactions.smiles import SmilesError, inchikey, parse_smiles

STEREO = [
    "C/C=C/C",  # trans-but-2-ene: double-bond stereo only
    r"F/C=C\Cl",
    "C[C@H](N)C(=O)O",
    "C[C@@H]1CC[C@H](C)CC1",  # ring cis/trans
    r"[2H]C/C=C/[H]",  # explicit hydrogens merged
    "O=C(O)/C=C/c1ccccc1.Cl",
]


@pytest.mark.parametrize("smiles", STEREO)
def test_parse_smiles_keeps_the_stereo_molfromsmiles_perceives(smiles: str) -> None:
    ours, rdkit = parse_smiles(smiles), Chem.MolFromSmiles(smiles)
    assert Chem.MolToSmiles(ours) == Chem.MolToSmiles(rdkit)
    assert Chem.MolToInchiKey(ours) == Chem.MolToInchiKey(rdkit) == inchikey(smiles)


def test_cis_and_trans_get_different_keys() -> None:
    trans, cis = (Chem.MolToInchiKey(parse_smiles(s)) for s in ("C/C=C/C", r"C/C=C\C"))
    assert trans != cis


def test_invalid_smiles_is_named() -> None:
    with pytest.raises(SmilesError, match="C1CC"):
        parse_smiles("C1CC")
