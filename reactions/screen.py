"""Cheap necessary conditions for a substructure match, evaluated for many molecules at once in numpy.

A reactant pattern can only match a molecule that has, for every distinct atom query of the pattern,
at least as many atoms that could satisfy it as the pattern has copies of it, and likewise for every
distinct (atom query, bond query, atom query) edge. RDKit describes each query as a tree
(`Atom.DescribeQuery()`); this module turns the leaves it understands (element, aromaticity, H
count, degree, charge, ring membership, bond order) into vectorised tests over per-atom and
per-bond feature arrays, and treats every other leaf (recursive SMARTS, ring sizes, ...) as "may
match". That keeps the screen sound: it never rejects a molecule that matches. For patterns of one
atom or one bond whose every leaf is understood, the screen is exact and no RDKit call is needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rdkit import Chem

# Columns of the per-atom feature matrix.
Z, AROMATIC, H_COUNT, DEGREE, TOTAL_DEGREE, CHARGE, IN_RING = range(7)
# Columns of the per-bond feature matrix.
BEGIN, END, BOND_TYPE, BOND_IN_RING = range(4)

_LEAF = re.compile(r"^(\w+) (-?\d+) (=|!=) val$")
_ATOM_COLUMNS = {
    "AtomAtomicNum": Z, "AtomHCount": H_COUNT, "AtomExplicitDegree": DEGREE,
    "AtomTotalDegree": TOTAL_DEGREE, "AtomFormalCharge": CHARGE,
}
_SINGLE, _DOUBLE, _TRIPLE, _AROMATIC = (int(t) for t in (
    Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC))
_BOND_PAIRS = {
    "SingleOrAromaticBond": (_SINGLE, _AROMATIC), "SingleOrDoubleBond": (_SINGLE, _DOUBLE),
    "DoubleOrAromaticBond": (_DOUBLE, _AROMATIC),
}


_LeafTest = Callable[[str, int, bool, np.ndarray], tuple[np.ndarray | None, bool]]


@dataclass(frozen=True)
class QueryNode:
    """A node of RDKit's query description tree: its text and its children."""

    text: str
    children: tuple[QueryNode, ...] = ()


def parse_description(description: str) -> QueryNode:
    """The tree of `Atom.DescribeQuery()` / `Bond.DescribeQuery()` (two spaces of indent a level)."""
    lines = [line for line in description.split("\n") if line.strip()]

    def build(position: int, depth: int) -> tuple[QueryNode, int]:
        children: list[QueryNode] = []
        next_position = position + 1
        while next_position < len(lines):
            line = lines[next_position]
            if (len(line) - len(line.lstrip(" "))) // 2 <= depth:
                break
            child, next_position = build(next_position, depth + 1)
            children.append(child)
        return QueryNode(lines[position].strip(), tuple(children)), next_position

    # An atom or bond without a query (from SMILES, not SMARTS) describes as "": unknown, never exact.
    return build(0, 0)[0] if lines else QueryNode("NoQuery")


def _evaluate(node: QueryNode, rows: np.ndarray, leaf: _LeafTest) -> tuple[np.ndarray, bool]:
    """(mask of rows that may satisfy the query, whether the mask is exact)."""
    if node.text in ("AtomAnd", "AtomOr", "BondAnd", "BondOr"):
        results = [_evaluate(child, rows, leaf) for child in node.children]
        combine = np.logical_and if node.text.endswith("And") else np.logical_or
        mask = combine.reduce([m for m, _ in results]) if results else np.ones(len(rows), bool)
        return mask, all(exact for _, exact in results)
    if node.text in ("AtomNull", "BondNull"):
        return np.ones(len(rows), bool), True
    match = _LEAF.match(node.text)
    if match is None or node.children:
        return np.ones(len(rows), bool), False
    name, value, negated = match.group(1), int(match.group(2)), match.group(3) == "!="
    mask, exact = leaf(name, value, negated, rows)
    if mask is None:
        return np.ones(len(rows), bool), False
    return (~mask if negated else mask), exact


def _atom_leaf(name: str, value: int, negated: bool, atoms: np.ndarray) -> tuple[np.ndarray | None, bool]:
    if name == "AtomType":  # aliphatic element Z, or 1000 + Z for an aromatic one
        return (atoms[:, Z] == value % 1000) & (atoms[:, AROMATIC] == int(value >= 1000)), True
    if name in _ATOM_COLUMNS:
        return atoms[:, _ATOM_COLUMNS[name]] == value, True
    if name in ("AtomIsAromatic", "AtomIsAliphatic"):
        return atoms[:, AROMATIC] == int(name == "AtomIsAromatic"), True
    if name == "AtomInNRings" and value == 0:
        return atoms[:, IN_RING] == 0, True
    if name in ("AtomInRing", "AtomInNRings", "AtomMinRingSize") and value != 0 and not negated:
        return atoms[:, IN_RING] == 1, False  # necessary (in some ring), not sufficient
    return None, False


def _bond_leaf(name: str, value: int, negated: bool, bonds: np.ndarray) -> tuple[np.ndarray | None, bool]:
    if name == "BondOrder":
        return bonds[:, BOND_TYPE] == value, True
    if name in _BOND_PAIRS:
        return np.isin(bonds[:, BOND_TYPE], _BOND_PAIRS[name]), True
    if name == "BondInRing":
        return bonds[:, BOND_IN_RING] == 1, True
    return None, False


def evaluate_atom_query(node: QueryNode, atoms: np.ndarray) -> tuple[np.ndarray, bool]:
    """(mask of atoms that may satisfy the query, whether the mask is exact)."""
    return _evaluate(node, atoms, _atom_leaf)


def evaluate_bond_query(node: QueryNode, bonds: np.ndarray) -> tuple[np.ndarray, bool]:
    """(mask of bonds that may satisfy the query, whether the mask is exact)."""
    return _evaluate(node, bonds, _bond_leaf)


def atom_features(mols: list[Chem.Mol]) -> tuple[np.ndarray, np.ndarray]:
    """(atoms (n_atoms, 7) int16 in the column order above, owner (n_atoms,) molecule index)."""
    # The same quantities RDKit's atom queries read: H count includes explicit H neighbours (H),
    # degree counts explicit neighbours (D), total degree adds the implicit Hs (X).
    # GetAtomWithIdx beats iterating mol.GetAtoms() by a third: the iterator is a Python wrapper.
    rows = [
        (a.GetAtomicNum(), a.GetIsAromatic(), a.GetTotalNumHs(True), a.GetDegree(), a.GetTotalDegree(),
         a.GetFormalCharge(), a.IsInRing())
        for mol in mols
        for a in map(mol.GetAtomWithIdx, range(mol.GetNumAtoms()))
    ]
    sizes = [mol.GetNumAtoms() for mol in mols]
    owner = np.repeat(np.arange(len(mols), dtype=np.int32), sizes)
    return np.asarray(rows, dtype=np.int16).reshape(len(rows), 7), owner


def bond_features(mols: list[Chem.Mol]) -> tuple[np.ndarray, np.ndarray]:
    """(bonds (n_bonds, 4) int32 with atom columns as global atom rows, owner (n_bonds,))."""
    offsets = np.cumsum([0] + [mol.GetNumAtoms() for mol in mols])
    rows = [
        (b.GetBeginAtomIdx() + offset, b.GetEndAtomIdx() + offset, int(b.GetBondType()), b.IsInRing())
        for mol, offset in zip(mols, offsets.tolist(), strict=False)
        for b in map(mol.GetBondWithIdx, range(mol.GetNumBonds()))
    ]
    sizes = [mol.GetNumBonds() for mol in mols]
    owner = np.repeat(np.arange(len(mols), dtype=np.int32), sizes)
    return np.asarray(rows, dtype=np.int32).reshape(len(rows), 4), owner


@dataclass(frozen=True)
class PatternScreen:
    """The counts a molecule must reach to possibly match one pattern."""

    atom_requirements: tuple[tuple[str, int], ...]  # (atom query description, copies)
    bond_requirements: tuple[tuple[tuple[str, str, str], int], ...]  # ((atom, bond, atom), copies)
    exact_if_understood: bool  # one atom, or two atoms and one bond


def pattern_screen(pattern: Chem.Mol) -> PatternScreen:
    atom_counts: dict[str, int] = {}
    for atom in pattern.GetAtoms():
        key = atom.DescribeQuery()
        atom_counts[key] = atom_counts.get(key, 0) + 1
    bond_counts: dict[tuple[str, str, str], int] = {}
    for bond in pattern.GetBonds():
        ends = sorted((bond.GetBeginAtom().DescribeQuery(), bond.GetEndAtom().DescribeQuery()))
        bond_key = (ends[0], bond.DescribeQuery(), ends[1])
        bond_counts[bond_key] = bond_counts.get(bond_key, 0) + 1
    small = pattern.GetNumAtoms() == 1 or (pattern.GetNumAtoms() == 2 and pattern.GetNumBonds() == 1)
    return PatternScreen(tuple(atom_counts.items()), tuple(bond_counts.items()), small)


class FeatureScreen:
    """Evaluates PatternScreens over one batch of molecules, sharing every query across patterns."""

    def __init__(self, mols: list[Chem.Mol]) -> None:
        self.n_mols = len(mols)
        self.atoms, self.atom_owner = atom_features(mols)
        self.bonds, self.bond_owner = bond_features(mols)
        self._atom_masks: dict[str, tuple[np.ndarray, bool]] = {}
        self._counts: dict[object, tuple[np.ndarray, bool]] = {}

    def _atom_mask(self, description: str) -> tuple[np.ndarray, bool]:
        if description not in self._atom_masks:
            self._atom_masks[description] = evaluate_atom_query(parse_description(description), self.atoms)
        return self._atom_masks[description]

    def _atom_count(self, description: str) -> tuple[np.ndarray, bool]:
        if description not in self._counts:
            mask, exact = self._atom_mask(description)
            counts = np.bincount(self.atom_owner[mask], minlength=self.n_mols)
            self._counts[description] = (counts, exact)
        return self._counts[description]

    def _bond_count(self, key: tuple[str, str, str]) -> tuple[np.ndarray, bool]:
        if key not in self._counts:
            first, first_exact = self._atom_mask(key[0])
            second, second_exact = self._atom_mask(key[2])
            bond_mask, bond_exact = evaluate_bond_query(parse_description(key[1]), self.bonds)
            begin, end = self.bonds[:, BEGIN], self.bonds[:, END]
            mask = bond_mask & ((first[begin] & second[end]) | (first[end] & second[begin]))
            counts = np.bincount(self.bond_owner[mask], minlength=self.n_mols)
            self._counts[key] = (counts, first_exact and second_exact and bond_exact)
        return self._counts[key]

    def candidates(self, screen: PatternScreen) -> tuple[np.ndarray, bool]:
        """(molecules that may match, whether that answer is already exact)."""
        keep = np.ones(self.n_mols, dtype=bool)
        exact = screen.exact_if_understood
        for description, copies in screen.atom_requirements:
            counts, understood = self._atom_count(description)
            keep &= counts >= copies
            exact &= understood
        for key, copies in screen.bond_requirements:
            counts, understood = self._bond_count(key)
            keep &= counts >= copies
            exact &= understood
        return keep, exact
