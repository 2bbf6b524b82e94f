"""The chemistry the synthesis environment needs, cached by canonical SMILES.

Every template is matched at most once against a given molecule (``template_slots``), every
reaction is run at most once per reactant tuple (``product``), every molecule is retro-analysed at
most once (``retro``), and reachability is memoised per (molecule, depth). Building blocks never
get matched here at all: their (template, slot) pairs come from the precomputed compatibility index.

Several products: a template applied to the same reactants can give several products (several
matching sites). The environment resolves this deterministically: it takes the first product in
``ReactionTemplate.run``'s sorted order of canonical SMILES, skipping multi-fragment products.
Retro-analysis verifies each candidate parent by running the forward reaction and checking that
this rule gives back the same molecule, so the forward and backward views agree exactly.

Reachability (the uniform backward policy's support) is proved lazily, with the same answers as the
plain recursion ``reachable(m, d) = any(reachable(p, d - 1) for p in retro(m))`` over plain
retro-analyses (``fast=False`` keeps that reference path; the tests compare the two):
- an atom-count bound: a reaction adds to its reactants' atoms at most its product template's atoms
  less its reactant templates' atoms, so a molecule with more atoms than the biggest start block
  plus d of the biggest such steps cannot be made in d reactions (no retro-analysis at all);
- depth 1 needs only the parents that are start blocks (``start_parents``): only the reversed
  templates that can make a molecule that big from blocks run, and only outcomes whose two sides
  have the heavy-atom counts of a start block and of a partner are canonicalised and verified. It
  serves ``parents(m, 1)``, ``reachable(m, 1)`` and the forward step check at depth 1;
- deeper proofs run the retro-analysis template by template and stop at the first parent proven
  reachable (parents already known reachable first); a proof without success is the full
  retro-analysis and is kept; ``stop_depths`` proves the parents of the deepest state first and the
  deepest depth first, so that shallower depths read reachability off analyses already made;
- the retro-analysis itself tests each distinct reversed-template pattern once (a substructure
  test) before running the templates that share it, and canonicalises identical outcome sides
  once (about half of them repeat: templates that differ only in a leaving group);
- results and facts go to a persistent store (``synflow.retro_store``) under ``store_dir``.
A pattern-fingerprint screen before ``RunReactants`` was measured and left out: a reversed template
that does not match costs RDKit about 5 µs, the molecule's pattern fingerprint about 300 µs.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rdkit
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import rdChemReactions

from reactions.index import CompatibilityIndex
from reactions.library import BuildingBlockLibrary
from reactions.similarity import packed_tanimoto
from reactions.templates import ReactionTemplate
from synflow.constraints import RouteConstraints
from synflow.retro_store import RetroStore, StoredParent

__all__ = ["RETRO_VERSION", "RetroParent", "SynthesisChemistry"]

# Bump whenever retro(), _verify, _candidate_names or the reachability rules change what they
# return: it is part of the persistent store's key, so results of older code are never read.
RETRO_VERSION = 1


@dataclass(frozen=True, slots=True)
class RetroParent:
    """One way to make a molecule in one step: ``template`` applied to ``parent`` in ``slot``
    (and, for a bimolecular template, library block ``block`` in the other slot; -1 otherwise)."""

    template: int
    slot: int
    parent: str
    block: int


def _reverse_reaction(smarts: str) -> rdChemReactions.ChemicalReaction | None:
    parts = smarts.split(">")
    if len(parts) != 3:
        return None
    _quiet = rdBase.BlockLogs()  # reversed templates warn about unmapped leaving groups; expected
    rxn = rdChemReactions.ReactionFromSmarts(f"{parts[2]}>>{parts[0]}")
    rxn.Initialize()
    return rxn


def _canonical(mol: Chem.Mol, n_template_atoms: int) -> str | None:
    """Canonical SMILES of a retro-reaction outcome, or None when it is not a sane molecule.

    RDKit copies a mapped atom's hydrogen count from the product, where it had one bond more, or
    takes it from an H query of the reverse template; let non-aromatic atoms recompute their
    hydrogens from their valence (forward verification checks the result).
    Only the first ``n_template_atoms`` atoms need it: RunReactants builds each outcome from its
    product template's atoms first, in template order, then copies the untouched rest of the
    molecule, whose atoms (hydrogen counts, no radicals, no atom maps) are exactly as they were in
    the sanitised input. Looking at those few atoms instead of all of them halves a retro-analysis.
    """
    try:
        atoms = [mol.GetAtomWithIdx(i) for i in range(min(n_template_atoms, mol.GetNumAtoms()))]
        for atom in atoms:
            if atom.GetNoImplicit() and not atom.GetIsAromatic():
                # A product-side query such as [N;H2,H1] sets an explicit H count (its first
                # alternative): drop it too, or a tertiary amide's amine comes back as [NH2] with
                # valence 4 and the step that made it is never found.
                atom.SetNumExplicitHs(0)
                atom.SetNoImplicit(False)
        Chem.SanitizeMol(mol)
        if any(atom.GetNumRadicalElectrons() for atom in atoms):
            return None
        return Chem.MolToSmiles(mol)
    except (ValueError, RuntimeError):
        return None


def _draws_kekule_rings(rev: rdChemReactions.ChemicalReaction) -> bool:
    """Whether a reverse template's reactant pattern (the forward product) draws ring bonds as
    explicit single/double bonds: a ring the forward reaction closes, such as a click triazole or
    a tetrazole, is aromatic in the sanitised product and only matches its Kekulé form."""
    for i in range(rev.GetNumReactantTemplates()):
        pattern = Chem.Mol(rev.GetReactantTemplate(i))
        pattern.UpdatePropertyCache(strict=False)
        Chem.FastFindRings(pattern)
        for bond in pattern.GetBonds():
            explicit = bond.GetBondType() == Chem.BondType.DOUBLE or Chem.Bond.GetSmarts(bond) == "-"
            if bond.IsInRing() and explicit:
                return True
    return False


def _kekulized(mol: Chem.Mol) -> Chem.Mol:
    """The molecule in RDKit's Kekulé form with aromatic flags cleared (a copy)."""
    kekule = Chem.Mol(mol)
    try:
        Chem.Kekulize(kekule, clearAromaticFlags=True)
    except Chem.KekulizeException:
        return mol
    return kekule


# Elements tried for an atom a reverse template creates from an atom list such as [Cl,Br,I] (RDKit
# writes it as a dummy atom): the leaving groups of common templates.
_LIST_ATOM_ELEMENTS = (9, 17, 35, 53, 8)


def _candidate_names(mol: Chem.Mol, n_template_atoms: int) -> list[str]:
    """Canonical SMILES of a retro outcome, one per assignment of its dummy (atom-list) atoms
    (dummies are template atoms, so only the first ``n_template_atoms`` are looked at), and each
    also with the template atoms' formal charges cleared: a list such as [OH,O-] or [NH2,NH3+]
    makes RDKit create the charged alternative, while the real parent is usually the neutral one.
    The forward check decides which candidates are parents."""
    n = min(n_template_atoms, mol.GetNumAtoms())
    dummies = [i for i in range(n) if mol.GetAtomWithIdx(i).GetAtomicNum() == 0]
    charged = [i for i in range(n) if mol.GetAtomWithIdx(i).GetFormalCharge() != 0]
    if len(dummies) > 2:
        return []
    if not dummies and not charged:  # one candidate: the outcome is ours to sanitise, no copy needed
        name = _canonical(mol, n)
        return [] if name is None else [name]
    out: list[str] = []
    for elements in itertools.product(_LIST_ATOM_ELEMENTS, repeat=len(dummies)):
        for neutral in (False, True) if charged else (False,):
            variant = Chem.RWMol(mol)
            for idx, z in zip(dummies, elements, strict=True):
                variant.GetAtomWithIdx(idx).SetAtomicNum(z)
            if neutral:
                for idx in charged:
                    variant.GetAtomWithIdx(idx).SetFormalCharge(0)
            name = _canonical(variant.GetMol(), n)
            if name is not None and name not in out:
                out.append(name)
    return out


# Candidate names of retro outcome sides by their exact binary form (RDKit's pickle: every atom's
# element, charge, hydrogens, flags, every bond, in order) and template-atom count.
_NameCache = dict[tuple[bytes, int], list[str]]


def _side_names(side: Chem.Mol, n_template_atoms: int, known: _NameCache | None) -> list[str]:
    """``_candidate_names``, shared between identical outcome sides: templates that differ only in
    a leaving group or in their other reactant give the same side for the same match (about half
    of the sides of a retro-analysis). A pickle costs a tenth of the canonicalisation it saves."""
    if known is None:
        return _candidate_names(side, n_template_atoms)
    key = (side.ToBinary(), n_template_atoms)
    names = known.get(key)
    if names is None:
        names = known[key] = _candidate_names(side, n_template_atoms)
    return names


def _template_growth(template: ReactionTemplate) -> int:
    """At most how many atoms a product has beyond its reactants': RunReactants builds a product
    from its product template's atoms plus copies of the reactant atoms the match did not cover
    (each reactant template atom covers one distinct reactant atom)."""
    rxn = template.reaction
    made = sum(rxn.GetProductTemplate(i).GetNumAtoms() for i in range(rxn.GetNumProductTemplates()))
    covered = sum(rxn.GetReactantTemplate(i).GetNumAtoms() for i in range(rxn.GetNumReactantTemplates()))
    return made - covered


# A bracket atom whose element is hydrogen ([H], [2H], [H+]): MolFromSmiles may keep it as an atom.
_BRACKET_HYDROGEN = r"\[\d*H(?![a-z])"


def _block_atom_bounds(library: BuildingBlockLibrary) -> np.ndarray:
    """An upper bound on each block's atom count as parsed (``mol(smiles).GetNumAtoms()``): its heavy
    atoms plus every dummy (``*``) and bracket-hydrogen atom its SMILES writes (no parse needed)."""
    column = library.descriptor_names.index("heavy_atoms")
    heavy = np.rint(library.descriptors[:, column]).astype(np.int64)
    hydrogen = re.compile(_BRACKET_HYDROGEN)
    extra = [s.count("*") + len(hydrogen.findall(s)) for s in library.smiles]
    return heavy + np.asarray(extra, dtype=np.int64)


@dataclass(frozen=True)
class _AtomBounds:
    """Upper bounds on the atom count (as parsed) of a molecule d reactions can make.

    By induction over a route: a start block has at most ``start`` atoms, and one reaction adds at
    most ``gain`` (the largest partner block plus the template's growth, over the templates); so
    d reactions make at most ``start + d * gain``. ``first_step[t]``: the bound for one reaction of
    template ``t`` on start blocks (None when ``t`` can never make a depth-1 molecule).
    """

    start: int
    gain: int | None
    first_step: tuple[int | None, ...]

    def depth_atoms(self, depth: int) -> int:
        if self.gain is None:
            return self.start if depth == 0 else -1
        return self.start + depth * self.gain


def _heavy_atoms_after_naming(side: Chem.Mol, n_template_atoms: int) -> int:
    """The heavy-atom count of every candidate ``_candidate_names`` makes of a retro outcome side:
    its template dummies all become heavy leaving-group elements, nothing else changes atoms."""
    n = min(n_template_atoms, side.GetNumAtoms())
    dummies = sum(1 for i in range(n) if side.GetAtomWithIdx(i).GetAtomicNum() == 0)
    return side.GetNumHeavyAtoms() + dummies


def _shared_patterns(
    reverse: Sequence[rdChemReactions.ChemicalReaction | None],
) -> tuple[list[Chem.Mol], list[int]]:
    """The distinct reactant patterns of the reversed templates (many templates share one: the same
    bond made from different leaving groups), and each template's position among them (-1: none,
    or a reaction RunReactants must see as it is)."""
    patterns: list[Chem.Mol] = []
    positions: dict[str, int] = {}
    of: list[int] = []
    for rev in reverse:
        if rev is None or rev.GetNumReactantTemplates() != 1:
            of.append(-1)
            continue
        pattern = rev.GetReactantTemplate(0)
        key = Chem.MolToSmarts(pattern)
        if key not in positions:
            positions[key] = len(patterns)
            patterns.append(pattern)
        of.append(positions[key])
    return patterns, of


class _Forms:
    """A molecule and (made on demand) its Kekulé form, with a memo of which shared reversed-template
    patterns match each: one substructure test a pattern stands in for the RunReactants calls of
    every template sharing it, since RunReactants makes no outcome where its pattern does not match
    (and a test costs less than a RunReactants call that finds nothing)."""

    def __init__(self, mol: Chem.Mol, patterns: list[Chem.Mol] | None) -> None:
        self.mol = mol
        self._kekule: Chem.Mol | None = None
        self._patterns = patterns
        self._hits: dict[tuple[int, bool], bool] = {}

    @property
    def kekule(self) -> Chem.Mol:
        if self._kekule is None:
            self._kekule = _kekulized(self.mol)
        return self._kekule

    def matches(self, pattern: int, kekule: bool) -> bool:
        if pattern < 0 or self._patterns is None:
            return True  # not screened: let RunReactants decide
        key = (pattern, kekule)
        hit = self._hits.get(key)
        if hit is None:
            target = self.kekule if kekule else self.mol
            hit = self._hits[key] = target.HasSubstructMatch(self._patterns[pattern])
        return hit


def _parents_of(stored: list[StoredParent]) -> tuple[RetroParent, ...]:
    return tuple(RetroParent(t, s, parent, b) for t, s, b, parent in stored)


def _in_retro_order(parents: set[RetroParent]) -> tuple[RetroParent, ...]:
    return tuple(sorted(parents, key=lambda p: (p.template, p.slot, p.parent, p.block)))


class _BoundedCache(dict[Any, Any]):
    """A dict that forgets its oldest quarter when it grows past ``capacity``.

    Every cached value here is a pure function of its key (a match, a product, a retro-analysis, a
    reachability fact), so a forgotten entry is only recomputed, to the same value: long runs keep
    a bounded memory and the same results.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = max(1, capacity)

    def __setitem__(self, key: object, value: object) -> None:
        super().__setitem__(key, value)
        if len(self) > self.capacity:
            for old in list(itertools.islice(iter(self), max(1, len(self) // 4))):
                del self[old]


class SynthesisChemistry:
    """Templates × library × compatibility index, with every result cached by SMILES.

    ``cache_size`` bounds each cache (molecules: a quarter of it); 200,000 keeps a long run within
    about 1 GB while a training run's working set (its replay and recent samples) stays cached.
    ``store_dir``: where retro-analyses and reachability facts persist across processes and runs
    (the run's ``environment.cache_dir``; None keeps them in memory only). ``fast=False`` proves
    reachability by the plain recursion over full retro-analyses: the reference the tests compare
    the lazy proofs with (same answers, many more retro-analyses). ``constraints``: fixed start
    blocks (the start-block set, hence reachability at depth 0) and a scaffold (``has_scaffold``,
    which the environment's stop mask reads); see ``synflow.constraints``.
    """

    def __init__(
        self,
        library: BuildingBlockLibrary,
        templates: Sequence[ReactionTemplate],
        index: CompatibilityIndex,
        max_reactions: int,
        min_reactions: int,
        cache_size: int = 200_000,
        store_dir: str | Path | None = None,
        fast: bool = True,
        constraints: RouteConstraints | None = None,
    ) -> None:
        self.library = library
        self.constraints = constraints or RouteConstraints()
        self.cache_size = cache_size
        self.templates = list(templates)
        self.index = index  # kept so the sampler processes can rebuild this chemistry
        self.max_reactions = max_reactions
        self.min_reactions = min_reactions
        self.n_blocks = len(library.smiles)
        self._partners: dict[tuple[int, int], np.ndarray] = {}
        self._block_slots: list[list[tuple[int, int]]] = [[] for _ in range(self.n_blocks)]
        self._index_blocks(index)
        column = library.descriptor_names.index("heavy_atoms")
        heavy_atoms = np.rint(library.descriptors[:, column]).astype(int)
        self._partner_sizes = {
            key: frozenset(heavy_atoms[blocks].tolist()) for key, blocks in self._partners.items()
        }
        self.start_blocks = self._start_blocks()
        self._is_start = np.zeros(self.n_blocks, dtype=bool)
        self._is_start[self.start_blocks] = True
        self._reverse = [_reverse_reaction(t.smarts) for t in self.templates]
        self._kekule_match = [rev is not None and _draws_kekule_rings(rev) for rev in self._reverse]
        self._reverse_patterns, self._reverse_pattern_of = _shared_patterns(self._reverse)
        self._screen = self._build_screen()
        # atoms of each reverse template's product patterns (the first atoms of each retro outcome)
        self._reverse_sizes = [
            []
            if rev is None
            else [rev.GetProductTemplate(i).GetNumAtoms() for i in range(rev.GetNumProductTemplates())]
            for rev in self._reverse
        ]
        # exact canonical-SMILES lookup: the library's own index_of also standardises misses, which
        # costs more than the whole retro step for the many retro fragments that are not blocks
        self._block_index = {smi: i for i, smi in enumerate(library.smiles)}
        self._mols: dict[str, Chem.Mol] = _BoundedCache(max(cache_size // 4, 1024))
        self._slots: dict[str, tuple[tuple[int, int], ...]] = _BoundedCache(cache_size)
        self._products: dict[tuple[int, tuple[str, ...]], str | None] = _BoundedCache(cache_size)
        self._slot_starts: dict[tuple[int, int], np.ndarray] = {}
        # retro-analyses, one bound for both kinds: the full one by SMILES, the one of start-block
        # parents only by (SMILES, "start")
        self._retro: dict[str | tuple[str, str], tuple[RetroParent, ...]] = _BoundedCache(cache_size)
        self._reachable: dict[tuple[str, int], bool] = _BoundedCache(cache_size)
        scaffold = self.constraints.scaffold
        self._scaffold = None if scaffold is None else Chem.MolFromSmarts(scaffold)
        self._scaffold_hits: dict[str, bool] = _BoundedCache(cache_size)
        self.fast = fast
        self.store_dir = Path(store_dir) if store_dir is not None else None
        self._store: RetroStore | None = None  # opened on the first retro-analysis, not here
        self._store_scope = 0  # the start-block set's part of a reachability fact's key
        self._bounds: _AtomBounds | None = None
        self._proofs = [0] * len(self.templates)  # reachability proofs each template gave (an order)
        self._start_heavy = frozenset(heavy_atoms[self.start_blocks].tolist())
        # retro: retro-analyses run, of which retro_full complete ones, retro_start start-block-only
        # ones (depth 1) and retro_stopped ones a reachability proof stopped early; bound_pruned:
        # reachability settled by the atom-count bound; stored_*: read from the store, not computed
        self.stats = {
            "matches": 0, "reactions": 0, "retro": 0, "retro_full": 0, "retro_start": 0,
            "retro_stopped": 0, "bound_pruned": 0, "stored_retro": 0, "stored_start_retro": 0,
            "stored_reachable": 0,
        }

    # -- setup -------------------------------------------------------------------------------
    def _index_blocks(self, index: CompatibilityIndex) -> None:
        empty = np.zeros(0, dtype=np.int32)
        for t in self.templates:
            for s in range(t.arity):
                other = (
                    np.asarray(index.blocks_for(t.index, 1 - s), dtype=np.int32) if t.arity == 2 else empty
                )
                self._partners[(t.index, s)] = np.sort(other)
        for b in range(self.n_blocks):
            self._block_slots[b] = [
                (t, s)
                for t, s in index.slots_of_block(b)
                if self.templates[t].arity == 1 or self._partners[(t, s)].size
            ]

    def _start_blocks(self) -> np.ndarray:
        """Blocks a route may begin with: the allowed ones (all unless ``constraints.start_blocks``),
        and with ``min_reactions`` ≥ 1 only those that fit a template (so no start is a dead end)."""
        allowed = self.constraints.start_blocks
        blocks = range(self.n_blocks) if allowed is None else sorted(set(allowed))
        if self.min_reactions == 0:
            return np.array(list(blocks), dtype=np.int32)
        return np.array([b for b in blocks if self._block_slots[b]], dtype=np.int32)

    def is_start_block(self, block: int) -> bool:
        return bool(self._is_start[block])

    def has_scaffold(self, smiles: str) -> bool:
        """Whether the molecule contains the scaffold the run requires (True when it requires none)."""
        if self._scaffold is None:
            return True
        hit = self._scaffold_hits.get(smiles)
        if hit is None:
            hit = self._scaffold_hits[smiles] = self.mol(smiles).HasSubstructMatch(self._scaffold)
        return hit

    # -- forward -----------------------------------------------------------------------------
    def mol(self, smiles: str) -> Chem.Mol:
        mol = self._mols.get(smiles)
        if mol is None:
            mol = Chem.MolFromSmiles(smiles)
            if mol is None:
                raise ValueError(f"cannot parse SMILES {smiles!r}")
            self._mols[smiles] = mol
        return mol

    def partners(self, template: int, slot: int) -> np.ndarray:
        """Library blocks that fit the other slot of ``template`` (empty for unimolecular)."""
        return self._partners[(template, slot)]

    def start_blocks_for(self, template: int, slot: int) -> np.ndarray:
        """Start blocks that fit ``slot`` of ``template`` (sorted)."""
        key = (template, slot)
        found = self._slot_starts.get(key)
        if found is None:
            rows = [b for b in self.start_blocks.tolist() if key in self._block_slots[b]]
            found = self._slot_starts[key] = np.array(rows, dtype=np.int32)
        return found

    def similar_blocks(self, block: int, candidates: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` blocks of ``candidates`` (``block`` itself left out) with the highest Tanimoto
        similarity to ``block`` on the library's Morgan fingerprints, most similar first."""
        others = candidates[candidates != block]
        if others.size <= k:
            return others
        fps = self.library.fingerprints
        similarity = packed_tanimoto(fps[others], fps[block])
        best = np.argpartition(-similarity, k - 1)[:k]
        return others[best[np.argsort(-similarity[best], kind="stable")]]

    def _build_screen(self) -> list[tuple[Chem.Mol, DataStructs.ExplicitBitVect, list[tuple[int, int]]]]:
        """Distinct reactant patterns (many templates share one), each with its pattern fingerprint
        and the (template, slot) pairs it stands for; slots that can never be used are left out."""
        groups: dict[str, tuple[Chem.Mol, list[tuple[int, int]]]] = {}
        for t in self.templates:
            for s in range(t.arity):
                if t.arity == 2 and not self._partners[(t.index, s)].size:
                    continue
                pattern = t.reactant_patterns[s]
                groups.setdefault(Chem.MolToSmarts(pattern), (pattern, []))[1].append((t.index, s))
        return [(pat, Chem.PatternFingerprint(pat), slots) for pat, slots in groups.values()]

    def template_slots(self, smiles: str, block: int | None = None) -> tuple[tuple[int, int], ...]:
        """The (template, slot) pairs that can be applied to the molecule.

        Each distinct reactant pattern is matched once, and only if its pattern-fingerprint bits
        are all set in the molecule's (RDKit's substructure screen: a pattern whose bits are not
        all present cannot match, so screening never drops a true match; tests check it against
        plain matching). Together this cuts the substructure searches about 3-fold.
        """
        if block is not None:
            return tuple(self._block_slots[block])
        cached = self._slots.get(smiles)
        if cached is None:
            mol = self.mol(smiles)
            fingerprint = Chem.PatternFingerprint(mol)
            found: list[tuple[int, int]] = []
            for pattern, bits, slots in self._screen:
                if not DataStructs.AllProbeBitsMatch(bits, fingerprint):
                    continue
                self.stats["matches"] += 1
                if mol.HasSubstructMatch(pattern):
                    found += slots
            cached = self._slots[smiles] = tuple(sorted(found))
        return cached

    def product(self, template: int, reactants: tuple[str, ...]) -> str | None:
        """The product of ``template`` on ``reactants`` (in slot order), or None if it fails."""
        key = (template, reactants)
        if key not in self._products:
            self.stats["reactions"] += 1
            _quiet = rdBase.BlockLogs()
            products = self.templates[template].run([self.mol(s) for s in reactants])
            single = [p for p in products if "." not in p]
            self._products[key] = single[0] if single else None
        return self._products[key]

    def block_index(self, smiles: str) -> int | None:
        """The library position of an exact canonical SMILES, or None."""
        return self._block_index.get(smiles)

    def block_smiles(self, block: int) -> str:
        return self.library.smiles[block]

    # -- backward ----------------------------------------------------------------------------
    def retro(self, smiles: str) -> tuple[RetroParent, ...]:
        """Every verified one-step way to make ``smiles`` (parents not yet checked for reachability)."""
        cached = self._known_retro(smiles)
        if cached is None:
            cached = self._remember_retro(smiles, self._compute_retro(smiles))
        return cached

    def _remember_retro(self, smiles: str, parents: tuple[RetroParent, ...]) -> tuple[RetroParent, ...]:
        self._retro[smiles] = parents
        store = self._open_store()
        if store is not None:
            store.add_parents(smiles, ((p.template, p.slot, p.block, p.parent) for p in parents))
        return parents

    def _known_retro(self, smiles: str) -> tuple[RetroParent, ...] | None:
        """The retro-analysis of ``smiles`` if memory or the store has it (nothing is computed)."""
        cached = self._retro.get(smiles)
        if cached is None:
            store = self._open_store()
            stored = None if store is None else store.parents(smiles)
            if stored is not None:
                self.stats["stored_retro"] += 1
                cached = self._retro[smiles] = _parents_of(stored)
        return cached

    def _count_retro(self, kind: str) -> None:
        self.stats["retro"] += 1
        self.stats[kind] += 1

    def _compute_retro(self, smiles: str, start_parents: bool = False) -> tuple[RetroParent, ...]:
        """The retro-analysis; ``start_parents``: only the parents that are start blocks (only the
        templates that can make a molecule this big from start blocks are run, and only outcome
        sides that could be a start block and a partner are canonicalised and verified)."""
        self._count_retro("retro_start" if start_parents else "retro_full")
        limits = self._atom_bounds().first_step if start_parents else None
        found: set[RetroParent] = set()
        names: _NameCache | None = {} if self.fast else None  # the reference canonicalises every side
        for t, outcomes in self._retro_outcomes(smiles, limits):
            sizes = self._reverse_sizes[t.index]
            for outcome in outcomes:
                found.update(self._verify(t, outcome, sizes, smiles, start_parents, names))
        return _in_retro_order(found)

    def start_parents(self, smiles: str) -> tuple[RetroParent, ...]:
        """The verified parents of ``smiles`` that are start blocks, i.e. ``parents(smiles, 1)``
        (in ``retro``'s order), without the full retro-analysis when that is not known."""
        full = self._known_retro(smiles) if self.fast else self.retro(smiles)
        if full is not None:
            return tuple(p for p in full if self._is_start_smiles(p.parent))
        cached = self._retro.get((smiles, "start"))
        if cached is None:
            store = self._open_store()
            stored = None if store is None else store.start_parents(self._store_scope, smiles)
            if stored is not None:
                self.stats["stored_start_retro"] += 1
                cached = _parents_of(stored)
            else:
                cached = self._compute_retro(smiles, start_parents=True)
                if store is not None:
                    rows = ((p.template, p.slot, p.block, p.parent) for p in cached)
                    store.add_start_parents(self._store_scope, smiles, rows)
            self._retro[(smiles, "start")] = cached
        return cached

    def gives_back(self, smiles: str, step: RetroParent, depth: int) -> bool:
        """Whether ``step`` (which made ``smiles`` at ``depth``) is in ``retro(smiles)``. At depth 1
        the backward policy only ever needs the start-block parents, so only those are computed."""
        if depth == 1 and self.fast and self._is_start_smiles(step.parent):
            return step in self.start_parents(smiles)
        return step in self.retro(smiles)

    def _retro_outcomes(
        self,
        smiles: str,
        atom_limits: Sequence[int | None] | None = None,
        order: Sequence[int] | None = None,
    ) -> Iterator[tuple[ReactionTemplate, list[Sequence[Chem.Mol]]]]:
        """Per reversed template (in ``order``, default all in index order), its outcomes on the
        molecule (and on its Kekulé form for the templates that draw Kekulé rings);
        ``atom_limits[t]``: skip template ``t`` (None: always) for a molecule with more atoms."""
        # the reference (fast=False) runs every reversed template, as the plain retro-analysis did
        forms = _Forms(self.mol(smiles), self._reverse_patterns if self.fast else None)
        atoms = forms.mol.GetNumAtoms()
        _quiet = rdBase.BlockLogs()  # impossible retro outcomes are expected; silence RDKit
        for i in range(len(self.templates)) if order is None else order:
            rev = self._reverse[i]
            if rev is None:
                continue
            if atom_limits is not None and ((limit := atom_limits[i]) is None or atoms > limit):
                continue
            pattern = self._reverse_pattern_of[i]
            outcomes: list[Sequence[Chem.Mol]] = []
            if forms.matches(pattern, kekule=False):
                outcomes += rev.RunReactants((forms.mol,))
            if self._kekule_match[i] and forms.matches(pattern, kekule=True):
                outcomes += rev.RunReactants((forms.kekule,))
            yield self.templates[i], outcomes

    def reverse_candidates(self, template: int, smiles: str) -> list[list[list[str]]] | None:
        """The unverified retro outcomes of one template for ``smiles``: per outcome, per reactant
        slot, the candidate parent SMILES (None when the template cannot be reversed). For audits."""
        rev = self._reverse[template]
        if rev is None:
            return None
        sizes = self._reverse_sizes[template]
        molecules = [self.mol(smiles)]
        if self._kekule_match[template]:
            molecules.append(_kekulized(molecules[0]))
        with rdBase.BlockLogs():
            return [
                [_candidate_names(side, sizes[i]) for i, side in enumerate(outcome)]
                for mol in molecules
                for outcome in rev.RunReactants((mol,))
            ]

    def _verify(
        self,
        t: ReactionTemplate,
        outcome: Sequence[Chem.Mol],
        sizes: list[int],
        smiles: str,
        start_parents: bool = False,
        known_names: _NameCache | None = None,
    ) -> list[RetroParent]:
        """The verified parents one retro outcome gives; ``start_parents``: only those whose parent
        is a start block (a parent side whose heavy atoms no start block has is not canonicalised).
        ``known_names``: candidate names of the outcome sides met so far in this retro-analysis."""
        if len(outcome) != t.arity:
            return []
        cache: dict[int, list[str]] = {}

        def names(i: int) -> list[str]:
            if i not in cache:
                cache[i] = _side_names(outcome[i], sizes[i], known_names)
            return cache[i]

        out = []
        for s in range(t.arity):
            if start_parents and _heavy_atoms_after_naming(outcome[s], sizes[s]) not in self._start_heavy:
                continue
            blocks = [-1]
            if t.arity == 2:  # the block side first: most retro outcomes fail here, before the parent side
                if outcome[1 - s].GetNumAtoms() not in self._partner_sizes[(t.index, s)]:
                    continue  # no partner block has that many heavy atoms: skip canonicalising it
                found = (self._block_index.get(n) for n in names(1 - s))
                blocks = [b for b in found if b is not None and self._is_partner(t.index, s, b)]
            for block in blocks:
                for parent in names(s):
                    if start_parents and not self._is_start_smiles(parent):
                        continue
                    if self._forward_ok(t.index, s, parent, block, smiles):
                        out.append(RetroParent(t.index, s, parent, block))
        return out

    def _is_partner(self, template: int, slot: int, block: int) -> bool:
        partners = self._partners[(template, slot)]
        pos = np.searchsorted(partners, block)
        return bool(pos < partners.size and partners[pos] == block)

    def _is_start_smiles(self, smiles: str) -> bool:
        block = self._block_index.get(smiles)
        return block is not None and bool(self._is_start[block])

    def _forward_ok(self, template: int, slot: int, parent: str, block: int, smiles: str) -> bool:
        """The forward reaction gives back ``smiles`` (RunReactants only succeeds on matching reactants,
        so this also proves the parent fits the slot: no separate pattern match is needed)."""
        try:
            self.mol(parent)
        except ValueError:
            return False
        reactants = (parent,) if block < 0 else self.ordered(slot, parent, self.block_smiles(block))
        return self.product(template, reactants) == smiles

    @staticmethod
    def ordered(slot: int, molecule: str, block: str) -> tuple[str, str]:
        return (molecule, block) if slot == 0 else (block, molecule)

    # -- reachability --------------------------------------------------------------------------
    def reachable(self, smiles: str, depth: int) -> bool:
        """Whether (smiles, depth) can be reached from the empty start by legal forward actions."""
        key = (smiles, depth)
        known = self._reachable.get(key)
        if known is None:
            known = self._stored_reachable(smiles, depth)
            if known is None:
                known = self._prove(smiles, depth) if self.fast else self._prove_plainly(smiles, depth)
                self._store_reachable(smiles, depth, known)
            self._reachable[key] = known
        return known

    def _prove_plainly(self, smiles: str, depth: int) -> bool:
        """The definition, over full retro-analyses (the reference ``fast=False`` keeps)."""
        if depth == 0:
            return self._is_start_smiles(smiles)
        return any(self.reachable(p.parent, depth - 1) for p in self.retro(smiles))

    def _prove(self, smiles: str, depth: int) -> bool:
        """The same answer as ``_prove_plainly``, settled by the cheapest exact argument at hand."""
        if depth == 0:
            return self._is_start_smiles(smiles)
        if self.mol(smiles).GetNumAtoms() > self._depth_atoms(depth):
            self.stats["bound_pruned"] += 1
            return False
        if depth == 1:
            return bool(self.start_parents(smiles))
        known = self._known_retro(smiles)
        if known is not None:
            return self._some_parent_reachable(known, depth - 1)
        return self._prove_by_templates(smiles, depth)

    def _prove_by_templates(self, smiles: str, depth: int) -> bool:
        """``reachable(smiles, depth ≥ 2)`` from the retro-analysis run template by template, the
        templates that gave proofs most often first: a proof stops at the first template with a
        parent reachable at depth − 1 (that partial analysis is dropped); without a proof every
        template has run, and the result is the full retro-analysis, which is kept."""
        order = sorted(range(len(self.templates)), key=lambda i: -self._proofs[i])
        found: set[RetroParent] = set()
        names: _NameCache = {}
        for t, outcomes in self._retro_outcomes(smiles, order=order):
            sizes = self._reverse_sizes[t.index]
            parents = {p for o in outcomes for p in self._verify(t, o, sizes, smiles, False, names)}
            if parents and self._some_parent_reachable(_in_retro_order(parents), depth - 1):
                self._proofs[t.index] += 1
                self._count_retro("retro_stopped")
                return True
            found |= parents
        self._count_retro("retro_full")
        self._remember_retro(smiles, _in_retro_order(found))
        return False

    def _some_parent_reachable(self, parents: Sequence[RetroParent], depth: int) -> bool:
        names = list(dict.fromkeys(p.parent for p in parents))
        if any(self._reachable.get((name, depth)) for name in names):
            return True  # a parent already proven reachable settles it: no proof of the others
        return any(self.reachable(name, depth) for name in names)

    def _depth_atoms(self, depth: int) -> int:
        return self._atom_bounds().depth_atoms(depth)

    def max_atoms(self, depth: int) -> int:
        """An upper bound on the atoms of any molecule made in ``depth`` reactions from a start block
        (its largest over depths ≤ ``depth``; -1 when none can be made)."""
        return max(self._depth_atoms(d) for d in range(depth + 1))

    def _atom_bounds(self) -> _AtomBounds:
        if self._bounds is None:
            atoms = _block_atom_bounds(self.library)
            start = int(atoms[self.start_blocks].max()) if self.start_blocks.size else -1
            gains = [self._step_gain(t, atoms) for t in self.templates]
            first = tuple(None if g is None or start < 0 else start + g for g in gains)
            usable = [g for g in gains if g is not None]
            self._bounds = _AtomBounds(start, max(usable) if usable else None, first)
        return self._bounds

    def _step_gain(self, template: ReactionTemplate, atoms: np.ndarray) -> int | None:
        """The most atoms one reaction of ``template`` adds to the molecule it is applied to (its
        partner block's plus its growth); None when it can never be applied (no partner)."""
        growth = _template_growth(template)
        if template.arity == 1:
            return growth
        sides = [self._partners[(template.index, s)] for s in range(2)]
        partner = [int(atoms[blocks].max()) for blocks in sides if blocks.size]
        return max(partner) + growth if partner else None

    def mark_reachable(self, smiles: str, depth: int, verified: bool = True) -> None:
        """Record a state reached by a forward transition (reachability is a fixed fact);
        ``verified``: the transition was retro-verified, so the fact may also be stored on disk."""
        if verified and not self._reachable.get((smiles, depth)):
            self._store_reachable(smiles, depth, True)
        self._reachable[(smiles, depth)] = True

    def parents(self, smiles: str, depth: int) -> list[RetroParent]:
        """Verified parents of (smiles, depth ≥ 1) that are themselves reachable at depth − 1."""
        if depth == 1 and self.fast:
            return list(self.start_parents(smiles))  # reachable at depth 0 means a start block
        return [p for p in self.retro(smiles) if self.reachable(p.parent, depth - 1)]

    def stop_depths(self, smiles: str) -> list[int]:
        """Depths in [min_reactions, max_reactions] at which the molecule is reachable."""
        depths = range(self.min_reactions, self.max_reactions + 1)
        if not self.fast:
            return [d for d in depths if self.reachable(smiles, d)]
        self._prove_parents_first(smiles)
        # deepest first: proving depth d analyses the parents fully (for their depth d - 1), and
        # depth d - 1 then reads their shallower reachability off those analyses
        return sorted(d for d in reversed(depths) if self.reachable(smiles, d))

    def _prove_parents_first(self, smiles: str) -> None:
        """For a molecule already reached at a depth d ≥ 3, prove its parents at d − 1 before its
        other stop depths: the backward policy asks for those parents next anyway, which takes
        their full retro-analyses, and stop depth 2 then reads their depth-1 reachability off those
        analyses instead of scanning each of them for start-block parents first. Only the order of
        work changes, never an answer."""
        for depth in range(3, self.max_reactions + 1):
            if self._reachable.get((smiles, depth)):
                self.parents(smiles, depth)

    # -- the persistent store --------------------------------------------------------------------
    def store_key(self) -> str:
        """The content key of this chemistry's retro-analyses: the retro code's version, RDKit's,
        the templates' SMARTS in order, the library's SMILES in order with the heavy-atom counts
        the partner screen uses, and the compatibility index's partner lists."""
        digest = hashlib.sha256(f"synflow-retro-v{RETRO_VERSION}\nrdkit {rdkit.__version__}\n".encode())
        for t in self.templates:
            digest.update(f"{t.arity}\t{t.smarts}\n".encode())
        digest.update("\n".join(self.library.smiles).encode())
        column = self.library.descriptor_names.index("heavy_atoms")
        digest.update(np.rint(self.library.descriptors[:, column]).astype(np.int64).tobytes())
        for key in sorted(self._partners):
            digest.update(f"{key}".encode())
            digest.update(self._partners[key].astype(np.int64).tobytes())
        return digest.hexdigest()

    def _open_store(self) -> RetroStore | None:
        if self._store is None and self.store_dir is not None:
            key = self.store_key()
            # reachability also depends on which blocks may start (min_reactions and the run's
            # environment.start_blocks decide); the scaffold changes no retro fact (only stop masks)
            starts = hashlib.sha256(key.encode() + self.start_blocks.astype(np.int64).tobytes())
            self._store_scope = int.from_bytes(starts.digest()[:8], "big", signed=True)
            self._store = RetroStore.in_directory(self.store_dir, key)
        return self._store

    def _stored_reachable(self, smiles: str, depth: int) -> bool | None:
        store = self._open_store() if depth > 0 else None  # depth 0 is a dictionary lookup
        found = None if store is None else store.reachable(self._store_scope, smiles, depth)
        if found is not None:
            self.stats["stored_reachable"] += 1
        return found

    def _store_reachable(self, smiles: str, depth: int, ok: bool) -> None:
        store = self._open_store() if depth > 0 else None
        if store is not None:
            store.add_reachable(self._store_scope, smiles, depth, ok)

    def flush_store(self) -> None:
        """Write the pending store rows now (they are also written in batches, and at exit)."""
        if self._store is not None:
            self._store.flush()
