"""Substructure and similarity filters over stored molecules, with per-app caches.

Similarity is Tanimoto on ECFP4 (Morgan radius 2, 2048 bits), the fingerprint each molecule row
stores packed (``molecules.fingerprint``): a request scores a batch of stored fingerprints at once
with NumPy, after the database has left out the rows whose popcount cannot reach the threshold
(``SimilarityQuery.popcount_bounds``). Rows an older version wrote have no stored fingerprint; theirs
is computed here from the SMILES, once per row (``ChemCache``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rdkit import Chem

from app.chem.parsing import parse_smarts, parse_smiles
from reactions.similarity import ECFP4_BYTES, ecfp4_generator, packed_ecfp4_of, packed_tanimoto, popcount
from reactions.smiles import parse_smiles_or_none

# Float slack on the popcount bounds: rounding (0.7 * 40 = 28.000000000000004) must never exclude a
# row that reaches the threshold; the exact test follows in NumPy.
_BOUND_SLACK = 1e-9


class SimilarityQuery:
    """Tanimoto to one query molecule on packed ECFP4 fingerprints, equal to RDKit's
    ``DataStructs.TanimotoSimilarity`` on the same fingerprints (0.0 for two empty ones)."""

    def __init__(self, smiles: str, threshold: float) -> None:
        self._generator = ecfp4_generator()
        self.packed = np.frombuffer(self.fingerprint(parse_smiles(smiles)), dtype=np.uint8)
        self.popcount = popcount(self.packed.tobytes())
        self.threshold = threshold

    def fingerprint(self, mol: Chem.Mol) -> bytes:
        return packed_ecfp4_of(mol, self._generator)

    def popcount_bounds(self) -> tuple[int, int | None]:
        """The popcounts |b| a molecule needs to reach the threshold t: t·|q| ≤ |b| ≤ |q|/t (as
        |A∩B| ≤ min(|A|, |B|) and |A∪B| ≥ max(|A|, |B|)); no upper bound when t is 0."""
        if self.threshold <= 0:
            return 0, None
        low = math.ceil(self.threshold * self.popcount - _BOUND_SLACK)
        return max(0, low), math.floor(self.popcount / self.threshold + _BOUND_SLACK)

    def similarities(self, packed: np.ndarray) -> np.ndarray:
        """Tanimoto of the query to each row of (N, ``ECFP4_BYTES``) packed fingerprints."""
        return packed_tanimoto(packed, self.packed)


class _Lru:
    """A small thread-safe LRU map (API requests run in a thread pool)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            if key not in self._data:
                return default
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: Any, value: Any) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


_MISS = object()


class ChemCache:
    """Per-app caches for chemical filters (molecule rows never change their SMILES): SMARTS
    outcomes per (SMARTS, molecule id), parsed molecules as RDKit binaries, which rebuild about ten
    times faster than a SMILES parse, and the computed fingerprints of rows stored without one. A
    new SMARTS over the same top rows is then cheap, and a repeated query or the next page costs no
    RDKit work for rows already tested."""

    def __init__(self, molecules: int = 20_000, outcomes: int = 500_000, fingerprints: int = 100_000) -> None:
        self._mols = _Lru(molecules)
        self._fingerprints = _Lru(fingerprints)  # ~300 bytes each, only rows stored without one
        self._outcomes = _Lru(outcomes)

    def fingerprint(self, key: int, compute: Callable[[], Any]) -> Any:
        """A molecule's similarity fingerprint (the same for every query), computed once."""
        known = self._fingerprints.get(key, _MISS)
        if known is _MISS:
            known = compute()
            self._fingerprints.put(key, known)
        return known

    def outcome(self, key: Any, compute: Callable[[], Any]) -> Any:
        known = self._outcomes.get(key, _MISS)
        if known is _MISS:
            known = compute()
            self._outcomes.put(key, known)
        return known

    def mol(self, key: int, smiles: str) -> Chem.Mol | None:
        binary = self._mols.get(key)
        if binary is not None:
            return Chem.Mol(binary)
        mol = parse_smiles_or_none(smiles)
        if mol is not None:
            self._mols.put(key, mol.ToBinary())
        return mol


class MoleculeFilter:
    """A substructure and/or a similarity test over stored rows: similarity for a batch of rows at
    once (``similarities``), the substructure test row by row (``matches``), in that order."""

    def __init__(
        self,
        smarts: str | None,
        similar_to: str | None,
        min_similarity: float,
        cache: ChemCache | None = None,
    ) -> None:
        self.pattern = parse_smarts(smarts) if smarts else None
        self.similar = SimilarityQuery(similar_to, min_similarity) if similar_to else None
        self._cache = cache
        self._smarts = smarts

    @property
    def active(self) -> bool:
        return self.pattern is not None or self.similar is not None

    def similarities(self, rows: Sequence[tuple[int, str | None, bytes | None]]) -> np.ndarray:
        """Tanimoto to the query of each (id, SMILES, stored fingerprint) row, NaN where RDKit cannot
        read the SMILES; a row without a stored fingerprint gets one computed from its SMILES."""
        assert self.similar is not None, "a similarity query"
        packed = [fp if fp is not None else self._computed_fingerprint(i, smiles) for i, smiles, fp in rows]
        readable = np.array([fp is not None for fp in packed], dtype=bool)
        joined = b"".join(fp for fp in packed if fp is not None)
        values = np.full(len(rows), np.nan)
        values[readable] = self.similar.similarities(
            np.frombuffer(joined, dtype=np.uint8).reshape(-1, ECFP4_BYTES)
        )
        return values

    def _computed_fingerprint(self, molecule_id: int, smiles: str | None) -> bytes | None:
        similar = self.similar
        assert similar is not None

        def compute() -> bytes | None:
            mol = self._mol(molecule_id, smiles)
            return None if mol is None else similar.fingerprint(mol)

        return compute() if self._cache is None else self._cache.fingerprint(molecule_id, compute)

    def matches(self, molecule_id: int, smiles: str | None) -> bool:
        """The substructure test (True without a SMARTS, False where RDKit cannot read the SMILES)."""
        pattern = self.pattern
        if pattern is None:
            return True

        def compute() -> bool:
            mol = self._mol(molecule_id, smiles)
            return mol is not None and mol.HasSubstructMatch(pattern)

        return compute() if self._cache is None else self._cache.outcome((self._smarts, molecule_id), compute)

    def _mol(self, molecule_id: int, smiles: str | None) -> Chem.Mol | None:
        if smiles is None:
            return None
        return parse_smiles_or_none(smiles) if self._cache is None else self._cache.mol(molecule_id, smiles)
