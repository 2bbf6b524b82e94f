"""Plugin functions the tests load by ``tests.synflow.rewards.plugin_targets:NAME``."""

from __future__ import annotations

import math
import time


def heavy_atom_fraction(smiles: list[str], scale: float = 50.0) -> list[float]:
    from rdkit import Chem

    return [min(1.0, Chem.MolFromSmiles(s).GetNumHeavyAtoms() / scale) for s in smiles]


def length(smiles: list[str]) -> list[float]:
    return [float(len(s)) for s in smiles]


def returns_nan(smiles: list[str]) -> list[float]:
    return [math.nan for _ in smiles]


def raises(smiles: list[str]) -> list[float]:
    raise ValueError("model file missing")


def one_short(smiles: list[str]) -> list[float]:
    return [0.5] * (len(smiles) - 1)


def sleeps(smiles: list[str]) -> list[float]:
    time.sleep(5)
    return [0.5] * len(smiles)
