"""Building-block libraries: standardised, de-duplicated blocks with IDs, fingerprints and descriptors.

Fingerprints are Morgan (radius 2, 2048 bits by default) stored **bit-packed**: `fingerprints` has
shape (N, n_bits // 8), dtype uint8, as written by `np.packbits` (bit j of block i is
`np.unpackbits(fingerprints[i])[j]`); `dense_fingerprints()` gives the (N, n_bits) 0/1 matrix. Packed
storage keeps a 10^6-block library at 256 MB instead of 2 GB.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdFingerprintGenerator, rdMolDescriptors

from reactions.parallel import default_workers, map_chunks, split_evenly
from reactions.readers import RawRecord, read_records
from reactions.smiles import SmilesError, parse_smiles
from reactions.standardise import (
    StandardisationError,
    StandardisationSettings,
    Standardiser,
    standardise_smiles,
)

DEFAULT_LIBRARY_RESOURCE = "default_building_blocks.smi.gz"
# Cheap descriptors only (each under ~30 µs a molecule): Crippen logP costs ~0.6 ms a molecule, which
# would be ten minutes of a 10^6-block import, so it is left out.
DESCRIPTOR_NAMES = (
    "heavy_atoms", "mol_wt", "tpsa", "hbd", "hba", "rotatable_bonds", "rings", "aromatic_rings",
    "fraction_csp3", "labute_asa",
)
_NON_STRICT = rdMolDescriptors.NumRotatableBondsOptions.NonStrict
_PARALLEL_MIN_RECORDS = 4000  # below this a process pool costs more than it saves
_MAX_CHUNK = 20_000  # records a worker handles at once: bounds memory at any file size


@dataclass(frozen=True)
class RejectedEntry:
    """An input entry that did not join the library, and why."""

    row: int
    line: int
    id: str
    smiles: str
    reason: str


@dataclass(frozen=True)
class FingerprintSettings:
    radius: int = 2
    n_bits: int = 2048


@dataclass(eq=False)
class BuildingBlockLibrary:
    """Standardised building blocks; position i of every field describes block i."""

    smiles: list[str]
    ids: list[str]
    fingerprints: np.ndarray  # (N, n_bits // 8) uint8, bit-packed (see the module docstring)
    descriptors: np.ndarray  # (N, len(descriptor_names)) float32
    descriptor_names: tuple[str, ...] = DESCRIPTOR_NAMES
    rejected: list[RejectedEntry] = field(default_factory=list)
    settings: StandardisationSettings = field(default_factory=StandardisationSettings)
    fingerprint_settings: FingerprintSettings = field(default_factory=FingerprintSettings)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        n = len(self.smiles)
        if len(self.ids) != n or len(self.fingerprints) != n or len(self.descriptors) != n:
            raise ValueError("smiles, ids, fingerprints and descriptors must have one row per block")
        self.fingerprints.setflags(write=False)
        self.descriptors.setflags(write=False)
        self._positions: dict[str, int] | None = None
        self._hash: str | None = None

    def __len__(self) -> int:
        return len(self.smiles)

    def __repr__(self) -> str:
        return (f"BuildingBlockLibrary({len(self)} blocks, {len(self.rejected)} rejected, "
                f"source={self.source!r})")

    @property
    def n_bits(self) -> int:
        return self.fingerprint_settings.n_bits

    def dense_fingerprints(self, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(len(rows), n_bits) uint8 0/1 fingerprints of the given blocks (all when rows is None)."""
        packed = self.fingerprints if rows is None else self.fingerprints[np.asarray(rows)]
        return np.unpackbits(packed, axis=1, count=self.n_bits)

    def content_hash(self) -> str:
        """SHA-256 over the blocks, their IDs and every setting that shaped them."""
        if self._hash is None:
            digest = hashlib.sha256(b"synflow-library-v1\n")
            digest.update(json.dumps(self.settings.as_dict(), sort_keys=True).encode())
            digest.update(json.dumps(self.fingerprint_settings.__dict__, sort_keys=True).encode())
            digest.update("\n".join(self.smiles).encode())
            digest.update(b"\x00")
            digest.update("\n".join(self.ids).encode())
            self._hash = digest.hexdigest()
        return self._hash

    def index_of(self, smiles: str) -> int | None:
        """Position of a molecule in the library (any valid SMILES of it), or None."""
        if self._positions is None:
            self._positions = {s: i for i, s in enumerate(self.smiles)}
        position = self._positions.get(smiles)
        if position is not None:
            return position
        try:
            return self._positions.get(standardise_smiles(smiles, self.settings))
        except SmilesError:
            return None

    def mol(self, index: int) -> Chem.Mol:
        """A fresh RDKit molecule of block `index`."""
        return Chem.MolFromSmiles(self.smiles[index])


@dataclass
class _ChunkResult:
    """Standardised blocks of one chunk: accepted rows with features, rejected rows with reasons."""

    accepted: list[tuple[RawRecord, str]]
    rejected: list[RejectedEntry]
    fingerprints: np.ndarray
    descriptors: np.ndarray


def _standardise_record(record: RawRecord, standardiser: Standardiser) -> Chem.Mol:
    if record.molblock:
        with rdBase.BlockLogs():
            mol = Chem.MolFromMolBlock(record.molblock)
        if mol is None:
            raise StandardisationError("unreadable SDF record (RDKit could not parse the mol block)")
        return standardiser(mol)
    return standardiser(parse_smiles(record.smiles))


def descriptor_row(mol: Chem.Mol) -> list[float]:
    """The values of DESCRIPTOR_NAMES for one molecule."""
    return [
        mol.GetNumHeavyAtoms(),
        rdMolDescriptors.CalcExactMolWt(mol),
        rdMolDescriptors.CalcTPSA(mol),
        rdMolDescriptors.CalcNumLipinskiHBD(mol),
        rdMolDescriptors.CalcNumLipinskiHBA(mol),
        rdMolDescriptors.CalcNumRotatableBonds(mol, _NON_STRICT),
        rdMolDescriptors.CalcNumRings(mol),
        rdMolDescriptors.CalcNumAromaticRings(mol),
        rdMolDescriptors.CalcFractionCSP3(mol),
        rdMolDescriptors.CalcLabuteASA(mol),
    ]


_Task = tuple[list[RawRecord], StandardisationSettings, FingerprintSettings]


def _process_chunk(task: _Task) -> _ChunkResult:
    records, settings, fp_settings = task
    generator = rdFingerprintGenerator.GetMorganGenerator(
        radius=fp_settings.radius, fpSize=fp_settings.n_bits)
    accepted: list[tuple[RawRecord, str]] = []
    rejected: list[RejectedEntry] = []
    fingerprints: list[np.ndarray] = []
    descriptors: list[list[float]] = []
    standardiser = Standardiser(settings)
    for record in records:
        try:
            mol = _standardise_record(record, standardiser)
        except SmilesError as error:  # unreadable, or refused by standardisation
            rejected.append(RejectedEntry(record.row, record.line, record.id, record.smiles, str(error)))
            continue
        accepted.append((record, Chem.MolToSmiles(mol)))
        fingerprints.append(np.packbits(generator.GetFingerprintAsNumPy(mol).astype(bool)))
        descriptors.append(descriptor_row(mol))
    n_bytes = (fp_settings.n_bits + 7) // 8
    return _ChunkResult(
        accepted, rejected,
        np.asarray(fingerprints, dtype=np.uint8).reshape(len(accepted), n_bytes),
        np.asarray(descriptors, dtype=np.float32).reshape(len(accepted), len(DESCRIPTOR_NAMES)),
    )


def build_library(
    records: Iterable[RawRecord],
    settings: StandardisationSettings | None = None,
    fingerprint_settings: FingerprintSettings | None = None,
    workers: int | None = None,
    source: str = "<memory>",
) -> BuildingBlockLibrary:
    """Standardise, featurise and de-duplicate raw records (first occurrence wins)."""
    settings = settings or StandardisationSettings()
    fp_settings = fingerprint_settings or FingerprintSettings()
    records = list(records)
    if workers is None:  # automatic: all cores, unless the input is too small to pay for a pool
        workers = default_workers() if len(records) >= _PARALLEL_MIN_RECORDS else 1
    n_chunks = max(4 * workers, -(-len(records) // _MAX_CHUNK))
    chunks = [(records[a:b], settings, fp_settings) for a, b in split_evenly(len(records), n_chunks)]
    results = map_chunks(_process_chunk, chunks, workers)
    return _merge(results, settings, fp_settings, source)


def _merge(results: list[_ChunkResult], settings: StandardisationSettings,
           fp_settings: FingerprintSettings, source: str) -> BuildingBlockLibrary:
    first_seen: dict[str, RawRecord] = {}
    keep_rows: list[np.ndarray] = []
    rejected: list[RejectedEntry] = []
    for result in results:
        keep = np.zeros(len(result.accepted), dtype=bool)
        for position, (record, smiles) in enumerate(result.accepted):
            original = first_seen.get(smiles)
            if original is None:
                first_seen[smiles] = record
                keep[position] = True
            else:
                reason = f"duplicate of row {original.row} (id {original.id}): {smiles}"
                rejected.append(RejectedEntry(record.row, record.line, record.id, record.smiles, reason))
        keep_rows.append(keep)
        rejected.extend(result.rejected)
    rejected.sort(key=lambda entry: entry.row)
    fingerprints = _stack([r.fingerprints[k] for r, k in zip(results, keep_rows, strict=True)],
                          (0, (fp_settings.n_bits + 7) // 8), np.uint8)
    descriptors = _stack([r.descriptors[k] for r, k in zip(results, keep_rows, strict=True)],
                         (0, len(DESCRIPTOR_NAMES)), np.float32)
    return BuildingBlockLibrary(
        smiles=list(first_seen), ids=[record.id for record in first_seen.values()],
        fingerprints=fingerprints, descriptors=descriptors, rejected=rejected,
        settings=settings, fingerprint_settings=fp_settings, source=source,
    )


def _stack(parts: list[np.ndarray], empty_shape: tuple[int, int], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(empty_shape, dtype=dtype)


def load_building_blocks(
    path: str | Path,
    settings: StandardisationSettings | None = None,
    workers: int | None = None,
    fingerprint_settings: FingerprintSettings | None = None,
) -> BuildingBlockLibrary:
    """A library from a .smi/.csv/.sdf file (gzipped or not); see `build_library`."""
    return build_library(read_records(path), settings, fingerprint_settings, workers, source=str(path))


def library_from_smiles(
    smiles: Sequence[str], ids: Sequence[str] | None = None,
    settings: StandardisationSettings | None = None, workers: int | None = None,
) -> BuildingBlockLibrary:
    """A library from in-memory SMILES (IDs default to 'row:N')."""
    ids = list(ids) if ids is not None else [f"row:{i + 1}" for i in range(len(smiles))]
    records = (RawRecord(row=i + 1, line=i + 1, id=ids[i], smiles=s) for i, s in enumerate(smiles))
    return build_library(records, settings, workers=workers)


@lru_cache(maxsize=1)
def default_library() -> BuildingBlockLibrary:
    """The bundled open building-block library (reactions/data/; provenance in its README.md).

    Cached: standardising and featurising its blocks takes a few seconds and the result is the
    same every time.
    """
    with resources.as_file(resources.files("reactions.data").joinpath(DEFAULT_LIBRARY_RESOURCE)) as path:
        library = load_building_blocks(path)
    library.source = f"reactions/data/{DEFAULT_LIBRARY_RESOURCE}"
    return library
