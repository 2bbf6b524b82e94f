"""The retro-analysis gives back the steps the forward chemistry takes (tertiary amides, click rings,
charged leaving-group lists), and a product it cannot verify is counted and warned about, not
dropped silently."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from reactions.index import build_compatibility_index
from reactions.library import default_library, library_from_smiles
from reactions.templates import default_template_set, parse_template_lines
from synflow.chemistry import RetroParent, SynthesisChemistry
from synflow.env import Action, State, SynthesisEnv
from synflow.retro_audit import audit_retro

ACIDS = ["CC(=O)O", "CCC(=O)O", "OC(=O)c1ccccc1", "OC(=O)C1CC1"]
AMINES = ["CN", "Nc1ccccc1", "C1CCNCC1", "NCc1ccccc1"]


def chemistry(templates: list[str], blocks: list[str], max_reactions: int = 1) -> SynthesisChemistry:
    parsed = parse_template_lines(templates)
    library = library_from_smiles(blocks, ids=[f"B{i}" for i in range(len(blocks))], workers=1)
    index = build_compatibility_index(library, parsed, workers=1)
    return SynthesisChemistry(library, parsed, index, max_reactions, 1)


def test_every_amide_of_the_coupling_is_found_backwards_tertiary_ones_too() -> None:
    """The reverse template's [N;H2,H1] used to give the amine back as [NH2] with valence 4."""
    chem = chemistry(["[C:1](=[O:2])[OH].[N;H2,H1;!$(NC=O):3]>>[C:1](=[O:2])[N:3] amide"], ACIDS + AMINES)
    made = 0
    for a, acid in enumerate(chem.library.smiles[:4]):
        for m in range(4, 8):
            amine = chem.library.smiles[m]
            product = chem.product(0, chem.ordered(0, acid, amine))
            assert product is not None
            assert RetroParent(0, 0, acid, m) in chem.retro(product), product
            assert RetroParent(0, 1, amine, a) in chem.retro(product), product
            made += 1
    assert made == 16


def test_a_ring_the_reaction_closes_matches_in_its_kekule_form() -> None:
    """A tetrazole from a nitrile and an alkyl chloride (a SynFlowNet template) is aromatic once
    sanitised; the reverse template draws it with single and double bonds."""
    tetrazole = "[CH0;$(C-[#6]):1]#[NH0:2].[C;A;!$(C=O):3]-[#17]>>[C:1]1=[N:2]-N=N-N-1(-[C:3]) tetrazole"
    chem = chemistry([tetrazole], ["N#Cc1ccccc1", "CCCCCl"])
    product = chem.product(0, ("N#Cc1ccccc1", "CCCCCl"))
    assert product == "CCCCn1nnnc1-c1ccccc1"
    assert RetroParent(0, 0, "N#Cc1ccccc1", 1) in chem.retro(product)


def test_a_charged_alternative_in_a_leaving_group_list_also_gives_the_neutral_parent() -> None:
    """[OH,O-] makes RDKit create the carboxylate; the acid the block really is must be found too."""
    ester = (
        "[Cl,OH,O-:3][C$(C(=O)([CX4,c])),C$([CH](=O)):2]=[O:4]."
        "[O$([OH]([CX4,c])),O$([OH]([CX4,c])([CX4,c])):6]>>[*:6]-[C:2]=[O:4] ester"
    )
    chem = chemistry([ester], ["CC(=O)O", "OCC1CC1"])
    product = chem.product(0, ("CC(=O)O", "OCC1CC1"))
    assert product == "CC(=O)OCC1CC1"
    assert RetroParent(0, 0, "CC(=O)O", 1) in chem.retro(product)


def test_the_bundled_templates_lose_no_product_from_real_blocks() -> None:
    templates = default_template_set()
    library = default_library()
    chem = SynthesisChemistry(library, templates, build_compatibility_index(library, templates), 3, 1)
    audit = audit_retro(chem, np.random.default_rng(0), 300)
    assert audit.products > 200
    assert audit.misses == [], audit.by_template


def test_an_unverifiable_product_is_counted_and_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    chem = chemistry(["[C:1](=[O:2])[OH].[N;H2,H1;!$(NC=O):3]>>[C:1](=[O:2])[N:3] amide"], ACIDS + AMINES)
    env = SynthesisEnv(chem)
    start = env.step(State(None), Action("start", block=0))
    assert start is not None
    chem._retro[chem.product(0, ("CC(=O)O", "CN"))] = ()  # as if the retro-analysis could not find it
    with caplog.at_level(logging.WARNING, logger="synflow.env"):
        assert env.step(start, Action("bi", template=0, slot=0, block=4)) is None
        assert env.step(start, Action("bi", template=0, slot=0, block=4)) is None
    assert env.unverified == {0: 2}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "amide" in warnings[0] and "unverified_products" in warnings[0]
