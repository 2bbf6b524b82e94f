"""Structural alerts: RDKit's FilterCatalog (PAINS A/B/C, Brenk, NIH, ...) as a reward component.

A molecule's value is ``penalty ** n`` with n the number of distinct alerts it matches: 1 with no
alert; with the default ``penalty`` 0 any alert gives 0 (a hard filter), with 0 < penalty < 1 each
alert multiplies by ``penalty`` (a soft one). The matched alerts are the scorer's notes
(``{"alerts": ["PAINS_A: ene_rhod_A(235)", ...]}``), stored with the molecule.

The catalogues are built once per scorer (~15 ms for the five default ones); matching is the cost
per molecule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

from synflow.rewards.base import Scorer

# RDKit's catalogues by the names a config uses (``FilterCatalogParams.FilterCatalogs`` members).
ALERT_CATALOGS = (
    "PAINS_A", "PAINS_B", "PAINS_C", "PAINS", "BRENK", "NIH", "ZINC",
    "CHEMBL", "CHEMBL_BMS", "CHEMBL_LINT", "CHEMBL_MLSMR",
)
DEFAULT_ALERT_CATALOGS = ("PAINS_A", "PAINS_B", "PAINS_C", "BRENK", "NIH")


def filter_catalog(name: str) -> FilterCatalog:
    """RDKit's catalogue ``name`` (one of ``ALERT_CATALOGS``)."""
    if name not in ALERT_CATALOGS:
        raise ValueError(f"unknown alert catalogue {name!r}; use one of {', '.join(ALERT_CATALOGS)}")
    params = FilterCatalogParams()
    params.AddCatalog(getattr(FilterCatalogParams.FilterCatalogs, name))
    return FilterCatalog(params)


class AlertScorer(Scorer):
    """``penalty ** (number of distinct alerts matched)``; notes list the alerts as ``CATALOG: name``."""

    def __init__(self, catalogs: Sequence[str] = DEFAULT_ALERT_CATALOGS, penalty: float = 0.0) -> None:
        if not catalogs:
            raise ValueError("give at least one alert catalogue")
        if not 0.0 <= penalty <= 1.0:
            raise ValueError(f"penalty must lie in [0, 1], not {penalty}")
        self.penalty = penalty
        # one FilterCatalog per name, so each alert is labelled with the catalogue the user asked for
        # (RDKit's own ``FilterSet`` property says "Brenk" for BRENK and nothing useful for PAINS)
        self._catalogs = [(name, filter_catalog(name)) for name in dict.fromkeys(catalogs)]
        self._found: dict[str, list[str]] = {}  # the last batch's alerts by SMILES, for ``notes``

    def alerts(self, mol: Chem.Mol) -> list[str]:
        """The distinct alerts ``mol`` matches, as ``CATALOG: description``, in catalogue order."""
        return self.batch_alerts([mol])[0]

    def batch_alerts(self, mols: Sequence[Chem.Mol]) -> list[list[str]]:
        """``alerts`` of each molecule, matched catalogue by catalogue over the whole batch (a
        catalogue's patterns stay in the CPU's caches, most likely): with the five default catalogues
        3.6 CPU ms per molecule, against 6.6 molecule by molecule (``benchmarks/chem_filters.py alerts``
        measures both; BENCHMARKS.md)."""
        found: list[list[str]] = [[] for _ in mols]
        for name, catalog in self._catalogs:
            for names, mol in zip(found, mols, strict=True):
                names.extend(f"{name}: {entry.GetDescription()}" for entry in catalog.GetMatches(mol))
        return [list(dict.fromkeys(names)) for names in found]

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        found = self.batch_alerts(mols)
        self._found = dict(zip(smiles, found, strict=True))
        return np.array([self.penalty ** len(names) for names in found], dtype=np.float64)

    def notes(self, smiles: Sequence[str]) -> list[dict[str, Any]]:
        return [{"alerts": list(self._found[s])} if s in self._found else {} for s in smiles]
