"""Substructure and similarity filters over stored molecules, with per-app caches."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from app.chem.parsing import parse_smarts, parse_smiles
from reactions.smiles import parse_smiles_or_none


class SimilarityQuery:
    """Tanimoto on Morgan radius-2, 2048-bit fingerprints."""

    def __init__(self, smiles: str, threshold: float) -> None:
        self._gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
        self._query = self._gen.GetFingerprint(parse_smiles(smiles))
        self.threshold = threshold

    def fingerprint(self, mol: Chem.Mol) -> Any:
        return self._gen.GetFingerprint(mol)

    def similarity(self, mol: Chem.Mol) -> float:
        return self.similarity_to(self.fingerprint(mol))

    def similarity_to(self, fingerprint: Any) -> float:
        return DataStructs.TanimotoSimilarity(self._query, fingerprint)


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
    """Per-app caches for chemical filters (molecule rows never change their SMILES):
    filter outcomes per (filter, molecule id) and parsed molecules as RDKit binaries, which
    rebuild about ten times faster than SMILES parse, so a new SMARTS over the same top rows is
    cheap and a repeated query or the next page costs no RDKit work for rows already tested."""

    def __init__(self, molecules: int = 20_000, outcomes: int = 500_000) -> None:
        self._mols = _Lru(molecules)
        self._fingerprints = _Lru(molecules)
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
    """Substructure and similarity tests applied row by row (the database knows no chemistry)."""

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
        self._key = (smarts, similar_to, min_similarity if similar_to else None)

    @property
    def active(self) -> bool:
        return self.pattern is not None or self.similar is not None

    def similarity(self, smiles: str, molecule_id: int | None = None) -> float | None:
        """None when the row fails the filter, else the similarity (1.0 without a similarity query).
        With a cache and the row's id, outcomes and parsed molecules are reused across requests."""
        if self._cache is None or molecule_id is None:
            return self._test(parse_smiles_or_none(smiles))
        return self._cache.outcome((self._key, molecule_id), lambda: self._test_cached(molecule_id, smiles))

    def _test_cached(self, molecule_id: int, smiles: str) -> float | None:
        """Like ``_test``, but the fingerprint comes from the cache: a new similarity query over
        rows seen before costs one Tanimoto per row instead of a parse and a fingerprint."""
        cache = self._cache
        assert cache is not None
        if self.pattern is not None:
            mol = cache.mol(molecule_id, smiles)
            if mol is None or not mol.HasSubstructMatch(self.pattern):
                return None
        if self.similar is None:
            return 1.0 if self.pattern is not None else self._test(cache.mol(molecule_id, smiles))
        similar = self.similar

        def compute() -> Any:
            mol = cache.mol(molecule_id, smiles)
            return None if mol is None else similar.fingerprint(mol)

        fingerprint = cache.fingerprint(molecule_id, compute)
        if fingerprint is None:
            return None
        sim = similar.similarity_to(fingerprint)
        return sim if sim >= similar.threshold else None

    def _test(self, mol: Chem.Mol | None) -> float | None:
        if mol is None:
            return None
        if self.pattern is not None and not mol.HasSubstructMatch(self.pattern):
            return None
        if self.similar is None:
            return 1.0
        sim = self.similar.similarity(mol)
        return sim if sim >= self.similar.threshold else None
