"""Constrained starts: fixed first building blocks, and a scaffold in every final molecule.

``environment.start_blocks`` (catalogue IDs or SMILES of the run's library) and
``environment.scaffold`` (SMARTS) restrict the set of objects the GFlowNet samples from. Both are
enforced by the environment's masks, never by a reward penalty, so with the uniform backward policy
(the ``sample`` preset) the trained sampler still draws molecules exactly ∝ R, over the constrained set:

* **start blocks** become the chemistry's start-block set: the only blocks offered at the empty state
  (``min_reactions`` ≥ 1 also keeps only those that fit a template). Reachability at depth 0 *is*
  being a start block, so the backward policy's parent sets (verified parents reachable at depth − 1)
  count only routes that begin with an allowed block: a bimolecular step whose other reactant is a
  disallowed block is a parent only with the allowed side as the molecule. The persistent
  retro-analysis store keeps reachability facts per start-block set (its ``scope``), so facts of a
  constrained run and of an unconstrained one never mix.
* **scaffold**: ``stop`` is legal only in a state whose molecule contains the scaffold (an RDKit
  substructure match of the SMARTS, chirality ignored), so every final molecule contains it, and a
  molecule without it has no stop depths (no backward start). Parent sets do not change: whether a
  state can be reached does not depend on whether it can stop. A state without the scaffold that has
  no legal action left (at ``max_reactions``, or no template applies) is a *dead end*: its
  trajectory ends invalid (``is_dead_end``), is never forced to stop, never stored as a molecule, and
  the trainer leaves it out of the f-TB loss (metric ``dead_ends``). A dead end says nothing about R,
  so the f-TB minimiser over the molecules' trajectories (log Z absorbs the dead-end mass, whatever it
  is) draws molecules exactly ∝ R given that a molecule is drawn. Training dead ends at the reward
  floor instead (as a failed reaction is) was measured on the tiny setting: the floor's huge residuals
  drag log Z down and the on-policy sampler collapsed onto the shortest safe molecules (L1 1.4 after
  600 steps). Masking dead ends beforehand would mean running the last reaction with every partner
  block at every state (thousands of reactions per state on a real library), so it is not done.
  Instead the loss gains λ·P(dead end) (``loss.dead_end_weight``), estimated from the trajectories
  drawn on-policy with the batch's dead-end rate as baseline (``Trainer._loss``). Among the f-TB
  minimisers (any dead-end mass) it selects the one with none, which still draws molecules ∝ R.
  Measured on the tiny setting (start blocks + pyridine, 600 on-policy TB steps): dead-end mass
  0.198 at λ = 0, 0.0033 / 0.0005 / 0.0001 / 0.0000 at λ = 0.03 / 0.1 / 0.3 / 1, with L1 to R/Z
  over the molecules 0.0000, 0.0012, 0.0007, 0.0082, and 0.109 at λ = 1: a large λ pushes a route
  prefix shared with dead ends down until the on-policy sampler no longer visits a molecule under
  it, so the default is λ = 0.1.

Checks, each a ``ConfigError`` naming the field (``environment.start_blocks.<i>`` or
``environment.scaffold``): the config validates the SMARTS and the entries' form (the API answers
422); when the run is built with its library, ``resolve_constraints`` names an entry that is neither
a catalogue ID nor a SMILES of a library block, and ``check_constraints`` an entry that cannot start a
route (it fits no template while ``min_reactions`` ≥ 1) and a scaffold that provably no molecule of the
run can contain. That proof is sound but not complete (an error only when infeasibility is certain):
the scaffold needs more atoms than any molecule of at most ``max_reactions`` reactions has (the
chemistry's atom-count bound), or one of its atoms requires elements that no building block and no
template product contains (a reaction only makes atoms its product template writes, and copies the
rest from its reactants).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rdkit import Chem

from reactions.library import BuildingBlockLibrary
from reactions.smiles import INPUT_LIMITS, SmilesError, parse_smiles
from synflow.config import ConfigError, EnvironmentConfig

if TYPE_CHECKING:
    from synflow.chemistry import SynthesisChemistry
    from synflow.trajectory import Trajectory

__all__ = ["RouteConstraints", "check_constraints", "is_dead_end", "query_elements", "resolve_constraints"]

START_FIELD = "environment.start_blocks"
SCAFFOLD_FIELD = "environment.scaffold"


@dataclass(frozen=True)
class RouteConstraints:
    """Resolved constraints (picklable: they travel with ``synflow.actors.ChemistrySpec``).

    ``start_blocks``: library positions of ``environment.start_blocks``, in the config's order (None:
    any block may start); ``scaffold``: the SMARTS every final molecule contains (None: none)."""

    start_blocks: tuple[int, ...] | None = None
    scaffold: str | None = None

    @property
    def active(self) -> bool:
        return self.start_blocks is not None or self.scaffold is not None


def is_dead_end(traj: Trajectory) -> bool:
    """Whether a trajectory ended in a state with no legal action (no stop: a scaffold missing, or
    below ``min_reactions``), as opposed to a molecule or a reaction that failed."""
    return not traj.valid and bool(traj.steps) and traj.steps[-1].action.kind == "stop"


def resolve_constraints(env: EnvironmentConfig, library: BuildingBlockLibrary) -> RouteConstraints:
    """The config's constraints over ``library``; ``ConfigError`` naming each entry it cannot find.

    An entry is looked up as a catalogue ID first, then as a SMILES (standardised as the library's
    blocks were, so any SMILES of a block finds it)."""
    if env.start_blocks is None:
        return RouteConstraints(None, env.scaffold)
    return RouteConstraints(_resolve_blocks(env.start_blocks, library), env.scaffold)


def _resolve_blocks(entries: Sequence[str], library: BuildingBlockLibrary) -> tuple[int, ...]:
    by_id: dict[str, int] = {}
    for row, block_id in enumerate(library.ids):
        by_id.setdefault(block_id, row)
    found: list[int] = []
    errors: list[tuple[str, str]] = []
    where = f"the library {library.source!r} ({len(library)} blocks)"
    for i, entry in enumerate(entries):
        position: int | None = by_id.get(entry)
        if position is None:
            try:
                parse_smiles(entry, INPUT_LIMITS)
            except SmilesError as error:
                message = f"{entry!r} is not a catalogue ID of {where} and not a SMILES: {error}"
                errors.append((f"{START_FIELD}.{i}", message))
                continue
            position = library.index_of(entry)
        if position is None:
            errors.append((f"{START_FIELD}.{i}", f"{entry!r} is not a building block of {where}"))
            continue
        found.append(position)
    if errors:
        raise ConfigError(errors[:50])
    return tuple(found)


def check_constraints(chem: SynthesisChemistry) -> None:
    """``ConfigError`` when a constraint of ``chem`` leaves nothing to sample (see the module doc)."""
    errors = _start_errors(chem) + _scaffold_errors(chem)
    if errors:
        raise ConfigError(errors[:50])


def _start_errors(chem: SynthesisChemistry) -> list[tuple[str, str]]:
    blocks = chem.constraints.start_blocks
    if blocks is None:
        return []
    errors = []
    for i, block in enumerate(blocks):
        if not chem.is_start_block(block):
            errors.append(
                (
                    f"{START_FIELD}.{i}",
                    f"building block {chem.library.smiles[block]!r} ({chem.library.ids[block]}) fits no "
                    f"reaction template, so it cannot start a route of at least min_reactions = "
                    f"{chem.min_reactions} reaction(s)",
                )
            )
    return errors


def _scaffold_errors(chem: SynthesisChemistry) -> list[tuple[str, str]]:
    smarts = chem.constraints.scaffold
    if smarts is None:
        return []
    query = Chem.MolFromSmarts(smarts)
    most = chem.max_atoms(chem.max_reactions)
    if query.GetNumAtoms() > most:
        return [
            (
                SCAFFOLD_FIELD,
                f"{smarts!r} has {query.GetNumAtoms()} atoms, but no molecule made in at most "
                f"{chem.max_reactions} reaction(s) from this library has more than {most}",
            )
        ]
    for atom in query.GetAtoms():
        allowed = query_elements(atom)
        if allowed is not None and not _some_atom_can_be(chem, allowed):
            names = ", ".join(sorted(Chem.GetPeriodicTable().GetElementSymbol(z) for z in allowed))
            return [
                (
                    SCAFFOLD_FIELD,
                    f"{smarts!r}: atom {atom.GetIdx()} must be {names}, an element that no building "
                    "block and no template product contains, so no molecule of this run can match",
                )
            ]
    return []


def _some_atom_can_be(chem: SynthesisChemistry, elements: frozenset[int]) -> bool:
    """Whether an atom of a molecule the chemistry makes can have one of ``elements``: a reaction
    copies its reactants' atoms (elements unchanged) and writes its product template's atoms (every
    element they name counts). Blocks are read until one has such an atom (usually the first)."""
    for template in chem.templates:
        rxn = template.reaction
        for i in range(rxn.GetNumProductTemplates()):
            for atom in rxn.GetProductTemplate(i).GetAtoms():
                named = query_elements(atom)
                if (named if named is not None else {atom.GetAtomicNum()}) & elements:
                    return True
    for smiles in chem.library.smiles:
        mol = Chem.MolFromSmiles(smiles)
        if mol is not None and any(atom.GetAtomicNum() in elements for atom in mol.GetAtoms()):
            return True
    return False


def query_elements(atom: Chem.Atom) -> frozenset[int] | None:
    """The elements a SMARTS query atom can match, from RDKit's description of its query tree, or
    None when it is not limited to a known set (a wildcard, a negation, a recursive SMARTS, anything
    this reading does not know: None never leads to an error, so the check stays sound)."""
    if not atom.HasQuery():
        return frozenset({atom.GetAtomicNum()}) if atom.GetAtomicNum() > 0 else None
    lines = atom.DescribeQuery().splitlines()
    elements, _ = _read_query(lines, 0)
    return elements


def _read_query(lines: list[str], i: int) -> tuple[frozenset[int] | None, int]:
    """The element set of the query node on line ``i`` and the line after its subtree."""
    depth = _indent(lines[i])
    words = lines[i].split()
    children: list[frozenset[int] | None] = []
    j = i + 1
    while j < len(lines) and _indent(lines[j]) > depth:
        child, j = _read_query(lines, j)
        children.append(child)
    if words == ["AtomOr"]:
        return (None if any(c is None for c in children) else frozenset().union(*children)), j  # type: ignore[arg-type]
    if words == ["AtomAnd"]:
        known = [c for c in children if c is not None]
        return (frozenset.intersection(*known) if known else None), j
    if len(words) == 4 and words[0] in ("AtomAtomicNum", "AtomType") and words[2:] == ["=", "val"]:
        z = int(words[1]) % 1000  # AtomType adds 1000 for an aromatic atom
        return (frozenset({z}) if z > 0 else None), j
    return None, j


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))
