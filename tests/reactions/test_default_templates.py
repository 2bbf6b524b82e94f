"""Every default template makes the product a chemist expects from real building blocks."""

from __future__ import annotations

import pytest
from rdkit import Chem

from reactions.templates import default_template_set

# template name -> list of (reactants in template order, expected product). Expected products are
# written by hand as SMILES and canonicalised here, so a template that makes anything else fails.
CASES: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "amide coupling (carboxylic acid + amine)": [
        (("OC(=O)c1ccccc1", "NCc1ccccc1"), "O=C(NCc1ccccc1)c1ccccc1"),
        (("CC(=O)O", "c1ccc(N)cc1"), "CC(=O)Nc1ccccc1"),
    ],
    "amide coupling (acyl chloride + amine)": [(("ClC(=O)c1ccccc1", "C1COCCN1"), "O=C(c1ccccc1)N1CCOCC1")],
    "amide from methyl ester (aminolysis)": [(("COC(=O)c1ccccc1", "NCc1ccccc1"), "O=C(NCc1ccccc1)c1ccccc1")],
    "reductive amination (aldehyde + amine)": [(("O=Cc1ccccc1", "C1CCNCC1"), "C(c1ccccc1)N1CCCCC1")],
    "reductive amination (ketone + amine)": [(("O=C1CCCCC1", "NCc1ccccc1"), "C1CCC(NCc2ccccc2)CC1")],
    "Suzuki coupling (aryl halide + boronic acid)": [
        (("COc1ccc(Br)cc1", "OB(O)c1ccccc1"), "COc1ccc(-c2ccccc2)cc1"),
    ],
    "Suzuki coupling (aryl halide + pinacol boronate)": [
        (("Brc1ccncc1", "CC1(C)OB(c2ccccc2)OC1(C)C"), "c1ccc(-c2ccncc2)cc1"),
    ],
    "Buchwald-Hartwig amination (aryl halide + amine)": [(("Brc1ccccc1", "C1COCCN1"), "c1ccc(N2CCOCC2)cc1")],
    "SNAr amination (activated aryl halide + amine)": [
        (("Clc1ncccn1", "C1CCNCC1"), "c1cnc(N2CCCCC2)nc1"),
        (("O=[N+]([O-])c1ccc(F)cc1", "C1COCCN1"), "O=[N+]([O-])c1ccc(N2CCOCC2)cc1"),
    ],
    "SNAr etherification (activated aryl halide + alcohol or phenol)": [
        (("O=[N+]([O-])c1ccc(F)cc1", "Oc1ccccc1"), "O=[N+]([O-])c1ccc(Oc2ccccc2)cc1"),
    ],
    "SNAr thioetherification (activated aryl halide + thiol)": [
        (("Clc1ncccn1", "Sc1ccccc1"), "c1ccc(Sc2ncccn2)cc1"),
    ],
    "urea formation (isocyanate + amine)": [(("O=C=Nc1ccccc1", "C1CCNCC1"), "O=C(Nc1ccccc1)N1CCCCC1")],
    "urea formation (amine + amine, CDI)": [(("Nc1ccccc1", "NCc1ccccc1"), "O=C(NCc1ccccc1)Nc1ccccc1")],
    "thiourea formation (isothiocyanate + amine)": [
        (("S=C=Nc1ccccc1", "C1COCCN1"), "S=C(Nc1ccccc1)N1CCOCC1"),
    ],
    "sulfonamide formation (sulfonyl chloride + amine)": [
        (("Cc1ccc(S(=O)(=O)Cl)cc1", "NCc1ccccc1"), "Cc1ccc(S(=O)(=O)NCc2ccccc2)cc1"),
    ],
    "carbamate formation (chloroformate + amine)": [
        (("O=C(Cl)OCc1ccccc1", "C1CCNCC1"), "O=C(OCc1ccccc1)N1CCCCC1"),
    ],
    "carbamate formation (isocyanate + alcohol)": [
        (("O=C=Nc1ccccc1", "OCc1ccccc1"), "O=C(Nc1ccccc1)OCc1ccccc1"),
    ],
    "esterification (carboxylic acid + alcohol or phenol)": [(("OC(=O)c1ccccc1", "CCO"), "CCOC(=O)c1ccccc1")],
    "esterification (acyl chloride + alcohol or phenol)": [
        (("ClC(=O)c1ccccc1", "Oc1ccccc1"), "O=C(Oc1ccccc1)c1ccccc1"),
    ],
    "Mitsunobu etherification (phenol + alcohol)": [
        (("COc1ccc(O)cc1", "OC1CCCCC1"), "COc1ccc(OC2CCCCC2)cc1"),
    ],
    "Williamson etherification (alkyl halide + alcohol or phenol)": [
        (("BrCc1ccccc1", "Oc1ccccc1"), "c1ccc(COc2ccccc2)cc1"),
    ],
    "N-alkylation (alkyl halide + amine)": [(("BrCc1ccccc1", "C1COCCN1"), "c1ccc(CN2CCOCC2)cc1")],
    "S-alkylation (alkyl halide + thiol)": [(("BrCc1ccccc1", "Sc1ccccc1"), "c1ccc(CSc2ccccc2)cc1")],
    "azole N-alkylation (alkyl halide + NH azole)": [(("BrCc1ccccc1", "c1cn[nH]c1"), "c1ccc(Cn2cccn2)cc1")],
    "Chan-Lam amination (boronic acid + amine)": [(("OB(O)c1ccccc1", "C1COCCN1"), "c1ccc(N2CCOCC2)cc1")],
    "Chan-Lam azole N-arylation (boronic acid + NH azole)": [
        (("OB(O)c1ccccc1", "c1c[nH]cn1"), "c1ccc(-n2ccnc2)cc1"),
    ],
    "Ullmann diaryl ether (aryl halide + phenol)": [(("Ic1ccccc1", "Cc1ccc(O)cc1"), "Cc1ccc(Oc2ccccc2)cc1")],
    "Sonogashira coupling (aryl halide + terminal alkyne)": [
        (("Cc1ccc(I)cc1", "C#Cc1ccccc1"), "Cc1ccc(C#Cc2ccccc2)cc1"),
    ],
    "Heck reaction (aryl halide + terminal alkene)": [(("Brc1ccccc1", "C=CC(=O)OC"), "COC(=O)C=Cc1ccccc1")],
    "CuAAC click (azide + terminal alkyne)": [
        (("[N-]=[N+]=NCc1ccccc1", "C#Cc1ccccc1"), "c1ccc(Cn2cc(-c3ccccc3)nn2)cc1"),
    ],
    "aza-Michael addition (amine + acrylate or acrylamide)": [
        (("C1COCCN1", "C=CC(=O)OC"), "COC(=O)CCN1CCOCC1"),
    ],
    "benzimidazole (o-phenylenediamine + carboxylic acid)": [
        (("Nc1ccccc1N", "OC(=O)c1ccccc1"), "c1ccc(-c2nc3ccccc3[nH]2)cc1"),
    ],
    "benzimidazole (o-phenylenediamine + aldehyde)": [
        (("Nc1ccccc1N", "O=Cc1ccccc1"), "c1ccc(-c2nc3ccccc3[nH]2)cc1"),
    ],
    "benzoxazole (2-aminophenol + carboxylic acid)": [
        (("Nc1ccccc1O", "OC(=O)c1ccccc1"), "c1ccc(-c2nc3ccccc3o2)cc1"),
    ],
    "benzothiazole (2-aminothiophenol + aldehyde)": [
        (("Nc1ccccc1S", "O=Cc1ccccc1"), "c1ccc(-c2nc3ccccc3s2)cc1"),
    ],
    "1,2,4-oxadiazole (amidoxime + carboxylic acid)": [
        (("NC(=NO)c1ccccc1", "CC(=O)O"), "Cc1nc(-c2ccccc2)no1"),
    ],
    "1,3,4-oxadiazole (hydrazide + carboxylic acid)": [
        (("NNC(=O)c1ccccc1", "CC(=O)O"), "Cc1nnc(-c2ccccc2)o1"),
    ],
    "Hantzsch thiazole (alpha-haloketone + thioamide or thiourea)": [
        (("BrCC(=O)c1ccccc1", "CC(N)=S"), "Cc1nc(-c2ccccc2)cs1"),
        (("BrCC(=O)c1ccccc1", "NC(N)=S"), "Nc1nc(-c2ccccc2)cs1"),
    ],
    "imidazole (alpha-haloketone + amidine)": [
        (("BrCC(=O)c1ccccc1", "N=C(N)c1ccccc1"), "c1ccc(-c2nc(-c3ccccc3)c[nH]2)cc1"),
    ],
    "imidazo[1,2-a]pyridine (2-aminopyridine + alpha-haloketone)": [
        (("Nc1ccccn1", "BrCC(=O)c1ccccc1"), "c1ccc(-c2cn3ccccc3n2)cc1"),
    ],
    "Knorr pyrazole (1,3-diketone + hydrazine)": [
        (("CC(=O)CC(C)=O", "NNc1ccccc1"), "Cc1cc(C)n(-c2ccccc2)n1"),
    ],
    "Fischer indole (arylhydrazine + ketone)": [
        (("NNc1ccccc1", "O=C1CCCCC1"), "c1ccc2c(c1)[nH]c1c2CCCC1"),
    ],
    "Pictet-Spengler (tryptamine + aldehyde)": [
        (("NCCc1c[nH]c2ccccc12", "O=Cc1ccccc1"), "c1ccc(C2NCCc3c2[nH]c2ccccc32)cc1"),
    ],
    "tetrazole (nitrile + sodium azide)": [(("N#Cc1ccccc1",), "c1ccc(-c2nn[nH]n2)cc1")],
    "Boc deprotection": [(("CC(C)(C)OC(=O)N1CCNCC1",), "C1CNCCN1")],
    "Cbz deprotection (hydrogenolysis)": [(("O=C(O)CNC(=O)OCc1ccccc1",), "NCC(=O)O")],
    "Fmoc deprotection": [(("O=C(O)CNC(=O)OCC1c2ccccc2-c2ccccc21",), "NCC(=O)O")],
    "methyl ester hydrolysis": [(("COC(=O)c1ccccc1",), "O=C(O)c1ccccc1")],
    "ethyl ester hydrolysis": [(("CCOC(=O)c1ccccc1",), "O=C(O)c1ccccc1")],
    "tert-butyl ester deprotection": [(("CC(C)(C)OC(=O)c1ccccc1",), "O=C(O)c1ccccc1")],
    "TBS ether deprotection": [(("CC(C)(C)[Si](C)(C)OCc1ccccc1",), "OCc1ccccc1")],
    "nitro reduction": [(("O=[N+]([O-])c1ccccc1",), "Nc1ccccc1")],
    "azide reduction (Staudinger)": [(("[N-]=[N+]=NCc1ccccc1",), "NCc1ccccc1")],
    "nitrile reduction to primary amine": [(("N#Cc1ccccc1",), "NCc1ccccc1")],
    "ketone reduction to secondary alcohol": [(("CC(=O)c1ccccc1",), "CC(O)c1ccccc1")],
}


def canonical(smiles: str) -> str:
    mol = Chem.MolFromSmiles(smiles)
    assert mol is not None, smiles
    return Chem.MolToSmiles(mol)


def test_every_default_template_has_a_case() -> None:
    names = [t.name for t in default_template_set()]
    assert len(names) == len(set(names)), "template names must be unique"
    assert sorted(names) == sorted(CASES), set(names) ^ set(CASES)
    assert len(names) >= 40


@pytest.mark.parametrize(("name", "reactants", "expected"),
                         [(name, r, e) for name, cases in CASES.items() for r, e in cases])
def test_template_makes_expected_product(name: str, reactants: tuple[str, ...], expected: str) -> None:
    template = default_template_set().by_name(name)
    mols = [Chem.MolFromSmiles(s) for s in reactants]
    for slot, mol in enumerate(mols):
        assert template.matches(mol, slot), f"{reactants[slot]} should fit slot {slot} of {name}"
    products = template.run(mols)
    assert canonical(expected) in products, products
    # The route contract: plain RDKit on template.smarts gives the same product.
    from rdkit.Chem import rdChemReactions

    outcomes = rdChemReactions.ReactionFromSmarts(template.smarts).RunReactants(tuple(mols))
    plain = set()
    for outcome in outcomes:
        product = outcome[0]
        if Chem.SanitizeMol(product, catchErrors=True) == Chem.SanitizeFlags.SANITIZE_NONE:
            plain.add(Chem.MolToSmiles(product))
    assert canonical(expected) in plain


@pytest.mark.parametrize("name", sorted(n for n in CASES if len(CASES[n][0][0]) == 2))
def test_bimolecular_template_refuses_swapped_reactants(name: str) -> None:
    """Slots are not interchangeable: the first case's blocks swapped fit neither slot both.

    A symmetric template (urea from two amines) is the exception: swapped, it makes the same product.
    """
    template = default_template_set().by_name(name)
    first, second = (Chem.MolFromSmiles(s) for s in CASES[name][0][0])
    if template.matches(second, 0) and template.matches(first, 1):
        assert canonical(CASES[name][0][1]) in template.run([second, first])
        return
    assert template.run([second, first]) == []
