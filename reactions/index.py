"""The compatibility index: for every template and reactant slot, the building blocks that can fill it.

Stored as one CSR structure: `blocks[offsets[s]:offsets[s + 1]]` are the sorted block indices (int32)
of slot row `s`, and template t's slots are rows `slot_start[t]` .. `slot_start[t + 1] - 1`. On disk
it is a folder of .npy files plus meta.json, named by a content hash of (library, templates, index
format, RDKit version), and reloaded with numpy memory-mapping; a change of either input changes the
hash, so a stale index is never read.

Building: reactant patterns shared between templates (equal SMARTS once atom maps are removed) are
matched once; a vectorised screen (reactions.screen) discards most (block, pattern) pairs before
RDKit's substructure search and settles one-atom/one-bond patterns without it; chunks of blocks
go to a process pool over all cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rdkit
from rdkit import Chem, rdBase

from reactions.library import BuildingBlockLibrary
from reactions.parallel import default_workers, map_chunks, split_evenly
from reactions.screen import FeatureScreen, PatternScreen, pattern_screen
from reactions.templates import TemplateSet

INDEX_FORMAT = 1
_PARALLEL_MIN_BLOCKS = 2000  # below this a process pool costs more than it saves
_CHUNKS_PER_WORKER = 4
_MAX_CHUNK = 4000  # blocks a worker holds as RDKit molecules at once: bounds memory at any library size


class CompatibilityIndex:
    """template × reactant slot → int32 indices of the blocks that match that slot's pattern."""

    def __init__(self, offsets: np.ndarray, blocks: np.ndarray, slot_start: np.ndarray,
                 meta: dict[str, Any], path: Path | None = None, from_cache: bool = False) -> None:
        self.offsets = offsets
        self.blocks = blocks
        self.slot_start = slot_start
        self.meta = meta
        self.path = path
        self.from_cache = from_cache
        self._slots_of_block: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_templates(self) -> int:
        return len(self.slot_start) - 1

    @property
    def n_blocks(self) -> int:
        return int(self.meta["n_blocks"])

    @property
    def n_compatible_pairs(self) -> int:
        """Number of (template slot, block) entries: how many ways a block can enter a template."""
        return int(self.offsets[-1])

    def arity(self, template_index: int) -> int:
        return int(self.slot_start[template_index + 1] - self.slot_start[template_index])

    def _row(self, template_index: int, slot: int) -> int:
        if not 0 <= template_index < self.n_templates:
            raise IndexError(f"template {template_index} out of range (0..{self.n_templates - 1})")
        if not 0 <= slot < self.arity(template_index):
            arity = self.arity(template_index)
            raise IndexError(f"template {template_index} has {arity} slot(s), not slot {slot}")
        return int(self.slot_start[template_index]) + slot

    def blocks_for(self, template_index: int, slot: int) -> np.ndarray:
        """Sorted int32 indices of the blocks that can fill `slot` of template `template_index`."""
        row = self._row(template_index, slot)
        return self.blocks[self.offsets[row]:self.offsets[row + 1]]

    def count(self, template_index: int, slot: int) -> int:
        row = self._row(template_index, slot)
        return int(self.offsets[row + 1] - self.offsets[row])

    def slot_counts(self) -> list[list[int]]:
        """Blocks per slot, template by template."""
        return [[self.count(t, s) for s in range(self.arity(t))] for t in range(self.n_templates)]

    def usable_templates(self) -> list[int]:
        """Templates whose every slot has at least one block."""
        return [t for t, counts in enumerate(self.slot_counts()) if min(counts) > 0]

    def unmatched_blocks(self) -> np.ndarray:
        """Indices of the blocks that fit no slot of any template."""
        seen = np.zeros(self.n_blocks, dtype=bool)
        seen[np.asarray(self.blocks)] = True
        return np.flatnonzero(~seen).astype(np.int32)

    def slots_of_block(self, block: int) -> list[tuple[int, int]]:
        """(template, slot) pairs that `block` can fill."""
        if self._slots_of_block is None:
            rows = np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))
            order = np.argsort(np.asarray(self.blocks), kind="stable")
            starts = np.searchsorted(np.asarray(self.blocks)[order], np.arange(self.n_blocks + 1))
            self._slots_of_block = (rows[order], starts)
        rows, starts = self._slots_of_block
        slot_start = np.asarray(self.slot_start)
        result = []
        for row in rows[starts[block]:starts[block + 1]].tolist():
            template = int(np.searchsorted(slot_start, row, side="right") - 1)
            result.append((template, row - int(slot_start[template])))
        return result


@dataclass(frozen=True)
class _PatternTable:
    """Distinct reactant patterns of a template set and, per slot row, which pattern it uses."""

    patterns: tuple[Chem.Mol, ...]
    screens: tuple[PatternScreen, ...]
    pattern_of_row: tuple[int, ...]
    slot_start: np.ndarray


def _pattern_key(pattern: Chem.Mol) -> str:
    unmapped = Chem.Mol(pattern)
    for atom in unmapped.GetAtoms():
        atom.SetAtomMapNum(0)
    return Chem.MolToSmarts(unmapped)


def _pattern_table(templates: TemplateSet) -> _PatternTable:
    keys: dict[str, int] = {}
    patterns: list[Chem.Mol] = []
    pattern_of_row: list[int] = []
    for template in templates:
        for pattern in template.reactant_patterns:
            key = _pattern_key(pattern)
            if key not in keys:
                keys[key] = len(patterns)
                patterns.append(pattern)
            pattern_of_row.append(keys[key])
    slot_start = np.cumsum([0] + [t.arity for t in templates]).astype(np.int64)
    return _PatternTable(tuple(patterns), tuple(pattern_screen(p) for p in patterns),
                         tuple(pattern_of_row), slot_start)


_MatchTask = tuple[list[str], tuple[Chem.Mol, ...], tuple[PatternScreen, ...]]


def _match_chunk(task: _MatchTask) -> tuple[list[np.ndarray], dict[str, int]]:
    """For each pattern, the chunk-local indices of the molecules that match it; and screen counts."""
    smiles, patterns, screens = task
    with rdBase.BlockLogs():
        parsed = [Chem.MolFromSmiles(s) for s in smiles]
    valid = [i for i, mol in enumerate(parsed) if mol is not None]
    mols = [parsed[i] for i in valid]
    screen = FeatureScreen(mols)
    local_of = np.asarray(valid, dtype=np.int32)
    matches = []
    stats = {"pairs": len(mols) * len(patterns), "screened_out": 0, "settled_by_screen": 0, "rdkit_calls": 0}
    for pattern, pattern_screen_ in zip(patterns, screens, strict=True):
        candidates, exact = screen.candidates(pattern_screen_)
        hits = np.flatnonzero(candidates)
        stats["screened_out"] += len(mols) - len(hits)
        if exact:
            stats["settled_by_screen"] += len(hits)
        else:
            stats["rdkit_calls"] += len(hits)
            hits = np.asarray([i for i in hits.tolist() if mols[i].HasSubstructMatch(pattern)], np.int64)
        matches.append(local_of[hits.astype(np.int64)])
    return matches, stats


def _match_all(smiles: list[str], table: _PatternTable,
               workers: int) -> tuple[list[np.ndarray], dict[str, int]]:
    n_chunks = max(1 if workers <= 1 else workers * _CHUNKS_PER_WORKER, -(-len(smiles) // _MAX_CHUNK))
    ranges = split_evenly(len(smiles), n_chunks)
    tasks = [(smiles[a:b], table.patterns, table.screens) for a, b in ranges]
    results = map_chunks(_match_chunk, tasks, workers)
    per_pattern = []
    for p in range(len(table.patterns)):
        parts = [matches[p] + start for (matches, _), (start, _) in zip(results, ranges, strict=True)]
        per_pattern.append(np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32))
    totals = {key: sum(stats[key] for _, stats in results) for key in results[0][1]} if results else {}
    return per_pattern, totals


def index_key(library: BuildingBlockLibrary, templates: TemplateSet) -> str:
    """Content hash that names an index: equal keys mean the same blocks, templates and matcher."""
    digest = hashlib.sha256(f"synflow-index-v{INDEX_FORMAT}\nrdkit {rdkit.__version__}\n".encode())
    digest.update(library.content_hash().encode())
    digest.update(templates.content_hash().encode())
    return digest.hexdigest()


def compute_compatibility_index(library: BuildingBlockLibrary, templates: TemplateSet,
                                workers: int | None = None) -> CompatibilityIndex:
    """Build the index in memory (no cache)."""
    if workers is None:  # automatic: all cores, unless the library is too small to pay for a pool
        workers = default_workers() if len(library) >= _PARALLEL_MIN_BLOCKS else 1
    table = _pattern_table(templates)
    per_pattern, stats = _match_all(library.smiles, table, workers)
    rows = [per_pattern[p] for p in table.pattern_of_row]
    offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    blocks = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
    meta = {
        "format": INDEX_FORMAT, "key": index_key(library, templates), "n_blocks": len(library),
        "n_templates": len(templates), "library_hash": library.content_hash(),
        "templates_hash": templates.content_hash(), "rdkit": rdkit.__version__,
        "distinct_patterns": len(table.patterns), "slots": len(rows), "screen": stats,
    }
    return CompatibilityIndex(offsets, blocks, table.slot_start, meta)


_ARRAYS = ("offsets", "blocks", "slot_start")


def save_index(index: CompatibilityIndex, directory: Path) -> Path:
    """Write the index atomically into `directory` (created; replaced if present)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory.parent))
    try:
        for name in _ARRAYS:
            np.save(staging / f"{name}.npy", np.asarray(getattr(index, name)))
        (staging / "meta.json").write_text(json.dumps(index.meta, indent=2, sort_keys=True))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def load_index(directory: Path, expected_key: str | None = None) -> CompatibilityIndex | None:
    """A memory-mapped index from `directory`, or None if absent, unreadable or for other inputs."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if expected_key is not None and meta.get("key") != expected_key:
            return None
        arrays = {name: _load_array(directory / f"{name}.npy") for name in _ARRAYS}
    except (OSError, ValueError):
        return None
    offsets = arrays["offsets"]
    if len(offsets) != int(meta["slots"]) + 1 or int(offsets[-1]) != len(arrays["blocks"]):
        return None
    return CompatibilityIndex(arrays["offsets"], arrays["blocks"], np.asarray(arrays["slot_start"]), meta,
                              path=directory, from_cache=True)


def _load_array(path: Path) -> np.ndarray:
    array = np.load(path, mmap_mode="r")
    return np.load(path) if array.size == 0 else array  # an empty array cannot be memory-mapped


def build_compatibility_index(
    library: BuildingBlockLibrary, templates: TemplateSet,
    cache_dir: Path | None = None, workers: int | None = None,
) -> CompatibilityIndex:
    """The index of `library` × `templates`, reloaded from `cache_dir` when one for these inputs exists."""
    if cache_dir is None:
        return compute_compatibility_index(library, templates, workers)
    key = index_key(library, templates)
    directory = Path(cache_dir) / f"compat-{key[:24]}"
    cached = load_index(directory, expected_key=key)
    if cached is not None:
        return cached
    index = compute_compatibility_index(library, templates, workers)
    save_index(index, directory)
    index.path = directory
    return index
