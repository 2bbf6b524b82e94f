"""Replaying a molecule's route with bare RDKit (DESIGN.md's contract), for tests of every layer."""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import AllChem


def route_replays(route: dict) -> bool:
    """DESIGN.md: running each step's template on its reactants gives the step's product."""
    current = None
    for step in route["steps"]:
        if step["action"] == "start":
            current = step["product"]
            continue
        rxn = AllChem.ReactionFromSmarts(step["template"]["smarts"])
        reactants = (
            [current]
            if step["action"] == "react_uni"
            else (
                [current, step["building_block"]["smiles"]]
                if step["slot"] == 0
                else [step["building_block"]["smiles"], current]
            )
        )
        products = set()
        for outcome in rxn.RunReactants([Chem.MolFromSmiles(s) for s in reactants]):
            for mol in outcome:
                try:
                    Chem.SanitizeMol(mol)
                    products.add(Chem.MolToSmiles(mol))
                except Exception:  # RDKit raises several types for unsanitisable outcomes
                    continue
        if Chem.CanonSmiles(step["product"]) not in {Chem.CanonSmiles(p) for p in products}:
            return False
        current = step["product"]
    return True
