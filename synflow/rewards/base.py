"""The interface every component's scorer implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rdkit import Chem


class Scorer:
    """Maps valid molecules to raw values (float64, one per molecule).

    ``mols[i]`` is the molecule whose canonical SMILES is ``smiles[i]`` (atom order may differ: use
    ``smiles`` where order matters, e.g. for a reproducible 3D embedding); only valid molecules.
    Raw values may be unbounded (a descriptor, an affinity): the component's transform shapes them.
    NaN means "could not be scored" for this molecule (e.g. a ligand that failed to embed) and
    becomes a score of 0; plugins must raise instead (see ``RewardPluginError``).
    """

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def score_with_errors(
        self, mols: Sequence[Chem.Mol], smiles: Sequence[str]
    ) -> tuple[np.ndarray, list[str | None]]:
        """Raw values and, per molecule, why it could not be scored (None where it was).

        Scorers that can fail for single molecules (plugins) override this; a molecule with a
        reason gets the reward floor and keeps the reason, the rest of the batch is unaffected.
        """
        return self(mols, smiles), [None] * len(smiles)

    def notes(self, smiles: Sequence[str]) -> list[dict[str, Any]]:
        """Per molecule of the batch just scored (same ``smiles``), what the scorer found besides its
        value, stored with the molecule: ``alerts`` (matched structural-alert names), ``purchasable``
        (bool), ``pose`` (the docked pose's file, relative to the pose directory). JSON values only;
        the default finds nothing."""
        return [{} for _ in smiles]

    def close(self) -> None:
        """Release processes or files; the default holds none."""


class MolScorer(Scorer):
    """A scorer defined one molecule at a time."""

    def score_mol(self, mol: Chem.Mol) -> float:
        raise NotImplementedError

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.score_mol(m) for m in mols), dtype=np.float64, count=len(mols))
