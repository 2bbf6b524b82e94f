"""Measurements the assay-model tests fit: real ZINC molecules (the MOSES rows of the bundled
building-block library) with Crippen logP, which RDKit computes exactly, as the "measured" value."""

from __future__ import annotations

import csv
import gzip
import random
from importlib import resources
from pathlib import Path

from rdkit import Chem

from synflow.rewards.chem import mol_logp


def zinc_smiles(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct MOSES (ZINC Clean Leads) SMILES from the bundled library, a seeded sample."""
    path = Path(str(resources.files("reactions.data"))) / "default_building_blocks.smi.gz"
    with gzip.open(path, "rt") as handle:
        smiles = [line.split("\t")[0] for line in handle if "MOSES-train" in line]
    random.Random(seed).shuffle(smiles)
    return smiles[:count]


def logp(smiles: str) -> float:
    return round(mol_logp(Chem.MolFromSmiles(smiles)), 4)


def write_logp_csv(path: Path, smiles: list[str], extra_rows: list[list[str]] | None = None) -> Path:
    """A CSV ``id,smiles,logp`` (≤ 300 rows in the tests), optionally with hand-made bad rows."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "smiles", "logp"])
        for i, s in enumerate(smiles):
            writer.writerow([f"Z{i}", s, logp(s)])
        for row in extra_rows or []:
            writer.writerow(row)
    return path


def save_logp_model(path: Path, count: int) -> str:
    """Fit a Gaussian process to the logP of ``count`` ZINC molecules (fast: a few dozen) and save it
    to ``path`` (.npz); its SHA-256."""
    from synflow.rewards.assay import collect_assay_data, fit_assay_model

    data = collect_assay_data((i + 2, s, str(logp(s))) for i, s in enumerate(zinc_smiles(count)))
    return fit_assay_model(data, "higher", estimators=["gaussian_process"]).save(path)
