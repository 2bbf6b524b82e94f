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
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import rdChemReactions

from reactions.index import CompatibilityIndex
from reactions.library import BuildingBlockLibrary
from reactions.similarity import packed_tanimoto
from reactions.templates import ReactionTemplate

__all__ = ["RetroParent", "SynthesisChemistry"]


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
    """

    def __init__(
        self,
        library: BuildingBlockLibrary,
        templates: Sequence[ReactionTemplate],
        index: CompatibilityIndex,
        max_reactions: int,
        min_reactions: int,
        cache_size: int = 200_000,
    ) -> None:
        self.library = library
        self.templates = list(templates)
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
        self._retro: dict[str, tuple[RetroParent, ...]] = _BoundedCache(cache_size)
        self._reachable: dict[tuple[str, int], bool] = _BoundedCache(cache_size)
        self.stats = {"matches": 0, "reactions": 0, "retro": 0}

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
        if self.min_reactions == 0:
            return np.arange(self.n_blocks, dtype=np.int32)
        return np.array([b for b in range(self.n_blocks) if self._block_slots[b]], dtype=np.int32)

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
        cached = self._retro.get(smiles)
        if cached is None:
            self.stats["retro"] += 1
            found: set[RetroParent] = set()
            mol = self.mol(smiles)
            kekule: Chem.Mol | None = None
            _quiet = rdBase.BlockLogs()  # impossible retro outcomes are expected; silence RDKit
            for t, rev, sizes, needs_kekule in zip(
                self.templates, self._reverse, self._reverse_sizes, self._kekule_match, strict=True
            ):
                if rev is None:
                    continue
                for outcome in rev.RunReactants((mol,)):
                    found.update(self._verify(t, outcome, sizes, smiles))
                if needs_kekule:
                    kekule = _kekulized(mol) if kekule is None else kekule
                    for outcome in rev.RunReactants((kekule,)):
                        found.update(self._verify(t, outcome, sizes, smiles))
            cached = self._retro[smiles] = tuple(
                sorted(found, key=lambda p: (p.template, p.slot, p.parent, p.block))
            )
        return cached

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
        self, t: ReactionTemplate, outcome: Sequence[Chem.Mol], sizes: list[int], smiles: str
    ) -> list[RetroParent]:
        if len(outcome) != t.arity:
            return []
        cache: dict[int, list[str]] = {}

        def names(i: int) -> list[str]:
            if i not in cache:
                cache[i] = _candidate_names(outcome[i], sizes[i])
            return cache[i]

        out = []
        for s in range(t.arity):
            blocks = [-1]
            if t.arity == 2:  # the block side first: most retro outcomes fail here, before the parent side
                if outcome[1 - s].GetNumAtoms() not in self._partner_sizes[(t.index, s)]:
                    continue  # no partner block has that many heavy atoms: skip canonicalising it
                found = (self._block_index.get(n) for n in names(1 - s))
                blocks = [b for b in found if b is not None and self._is_partner(t.index, s, b)]
            for block in blocks:
                for parent in names(s):
                    if self._forward_ok(t.index, s, parent, block, smiles):
                        out.append(RetroParent(t.index, s, parent, block))
        return out

    def _is_partner(self, template: int, slot: int, block: int) -> bool:
        partners = self._partners[(template, slot)]
        pos = np.searchsorted(partners, block)
        return bool(pos < partners.size and partners[pos] == block)

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

    def reachable(self, smiles: str, depth: int) -> bool:
        """Whether (smiles, depth) can be reached from the empty start by legal forward actions."""
        key = (smiles, depth)
        known = self._reachable.get(key)
        if known is None:
            if depth == 0:
                block = self._block_index.get(smiles)
                known = block is not None and bool(self._is_start[block])
            else:
                known = any(self.reachable(p.parent, depth - 1) for p in self.retro(smiles))
            self._reachable[key] = known
        return known

    def mark_reachable(self, smiles: str, depth: int) -> None:
        """Record a state reached by a verified forward transition (reachability is a fixed fact)."""
        self._reachable[(smiles, depth)] = True

    def parents(self, smiles: str, depth: int) -> list[RetroParent]:
        """Verified parents of (smiles, depth ≥ 1) that are themselves reachable at depth − 1."""
        return [p for p in self.retro(smiles) if self.reachable(p.parent, depth - 1)]

    def stop_depths(self, smiles: str) -> list[int]:
        """Depths in [min_reactions, max_reactions] at which the molecule is reachable."""
        return [d for d in range(self.min_reactions, self.max_reactions + 1) if self.reachable(smiles, d)]
