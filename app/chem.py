"""The RDKit the service needs: query parsing with reasons, InChIKeys, similarity, depictions, SDF."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import rdFingerprintGenerator
from rdkit.Chem.Draw import rdMolDraw2D


class ChemQueryError(ValueError):
    """A query SMILES or SMARTS that RDKit rejects; the message gives RDKit's reason."""


@dataclass(frozen=True)
class ChemLimits:
    """Bounds on user-supplied chemistry, checked before RDKit does any real work.

    RDKit holds the GIL: one 4,000-atom ring takes about a second to sanitise (ring perception grows
    quadratically) and a 10^4-atom one about 17 s, during which no other request is served. Text
    length is checked first (free), then heavy atoms on an unsanitised parse (linear, microseconds at
    these sizes), then SMARTS recursion depth, so every accepted input is cheap to sanitise and match.
    """

    max_chars: int = 1000
    max_atoms: int = 150
    max_smarts_recursion: int = 4
    max_reaction_chars: int = 2000


DEFAULT_LIMITS = ChemLimits()


def _check_length(text: str, kind: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise ChemQueryError(f"{kind} is {len(text)} characters long; at most {max_chars} are accepted")


def smarts_recursion_depth(smarts: str) -> int:
    """How deeply recursive SMARTS ``$(...)`` nest (0 when there are none)."""
    stack: list[bool] = []
    deepest = 0
    for i, char in enumerate(smarts):
        if char == "(":
            stack.append(i > 0 and smarts[i - 1] == "$")
            deepest = max(deepest, sum(stack))
        elif char == ")" and stack:
            stack.pop()
    return deepest


def check_smiles(smiles: str, limits: ChemLimits = DEFAULT_LIMITS) -> None:
    """Refuse SMILES too long or with too many atoms for a request (``ChemQueryError``)."""
    _check_length(smiles, "SMILES", limits.max_chars)
    with rdBase.BlockLogs():
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
    if raw is not None and raw.GetNumAtoms() > limits.max_atoms:
        raise ChemQueryError(f"SMILES has {raw.GetNumAtoms()} atoms; at most {limits.max_atoms} are accepted")


def check_smarts(smarts: str, limits: ChemLimits = DEFAULT_LIMITS, reaction: bool = False) -> None:
    """Refuse SMARTS (or reaction SMARTS) too long, too deeply recursive or with too many atoms."""
    kind = "reaction SMARTS" if reaction else "SMARTS"
    _check_length(smarts, kind, limits.max_reaction_chars if reaction else limits.max_chars)
    depth = smarts_recursion_depth(smarts)
    if depth > limits.max_smarts_recursion:
        raise ChemQueryError(
            f"{kind} nests recursive $(...) {depth} deep; at most {limits.max_smarts_recursion} levels"
        )
    if reaction:
        return
    with rdBase.BlockLogs():
        query = Chem.MolFromSmarts(smarts)
    if query is not None and query.GetNumAtoms() > limits.max_atoms:
        count = query.GetNumAtoms()
        raise ChemQueryError(f"SMARTS has {count} atoms; at most {limits.max_atoms} are accepted")


def parse_smiles(smiles: str) -> Chem.Mol:
    check_smiles(smiles)
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None or not smiles.strip():
            raise ChemQueryError(f"{smiles!r} is not valid SMILES (syntax error)")
        try:
            Chem.SanitizeMol(mol)
        except Exception as error:  # RDKit raises several exception types; the text is the reason
            raise ChemQueryError(f"{smiles!r} is not a valid molecule: {error}") from None
    return mol


def parse_smarts(smarts: str) -> Chem.Mol:
    check_smarts(smarts)
    with rdBase.BlockLogs():
        query = Chem.MolFromSmarts(smarts)
    if query is None or not smarts.strip():
        raise ChemQueryError(f"{smarts!r} is not valid SMARTS (syntax error)")
    return query


def mol_or_none(smiles: str) -> Chem.Mol | None:
    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(smiles)


def inchikey(smiles: str) -> str | None:
    mol = mol_or_none(smiles)
    if mol is None:
        return None
    with rdBase.BlockLogs():
        key = Chem.MolToInchiKey(mol)
    return key or None


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
        mol = mol_or_none(smiles)
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
            return self._test(mol_or_none(smiles))
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


def _svg(smiles: str, width: int, height: int) -> str:
    check_smiles(smiles)
    mol = mol_or_none(smiles)
    if mol is None:
        raise ChemQueryError(f"{smiles!r} cannot be depicted")
    drawer = rdMolDraw2D.MolDraw2DSVG(width, height)
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def make_svg_renderer(cache_size: int) -> Any:
    """A depiction function with its own LRU cache (one per app, no module-level cache)."""
    return lru_cache(maxsize=cache_size)(_svg)


def sdf_record(smiles: str, name: str, props: dict[str, Any]) -> str:
    """One SDF record; scores and the rest become ``> <name>`` data fields."""
    mol = mol_or_none(smiles)
    if mol is None:
        mol = Chem.Mol()
    mol.SetProp("_Name", name)
    for key, value in props.items():
        if value is not None:
            mol.SetProp(key, str(value))
    with rdBase.BlockLogs():
        block = Chem.MolToMolBlock(mol)
    lines = [block.rstrip("\n"), *_sdf_props(mol, props.keys()), "$$$$", ""]
    return "\n".join(lines)


def _sdf_props(mol: Chem.Mol, keys: Iterable[str]) -> list[str]:
    out: list[str] = []
    for key in keys:
        if mol.HasProp(key):
            out += [f">  <{key}>", mol.GetProp(key), ""]
    return out
