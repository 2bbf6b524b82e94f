"""User-supplied chemistry for the service: limits checked before RDKit works, query parsing with reasons."""

from __future__ import annotations

from dataclasses import dataclass

from rdkit import Chem, rdBase

from reactions.smiles import InputLimits, SmilesError, smarts_recursion_depth
from reactions.smiles import parse_smarts as strict_smarts
from reactions.smiles import parse_smiles as strict_parse


class ChemQueryError(ValueError):
    """A query SMILES or SMARTS that RDKit rejects; the message gives RDKit's reason."""


@dataclass(frozen=True)
class ChemLimits(InputLimits):
    """``reactions.smiles.InputLimits`` (characters, atoms, SMARTS recursion) plus the length of a
    reaction SMARTS in an uploaded template file."""

    max_reaction_chars: int = 2000


DEFAULT_LIMITS = ChemLimits()


def _check_length(text: str, kind: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise ChemQueryError(f"{kind} is {len(text)} characters long; at most {max_chars} are accepted")


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


def parse_smiles(smiles: str, limits: ChemLimits = DEFAULT_LIMITS) -> Chem.Mol:
    """A query molecule within ``limits``, or ``ChemQueryError`` with the reason."""
    try:
        return strict_parse(smiles, limits)
    except SmilesError as error:
        raise ChemQueryError(str(error)) from None


def parse_smarts(smarts: str, limits: ChemLimits = DEFAULT_LIMITS) -> Chem.Mol:
    """A query within ``limits``, or ``ChemQueryError`` with the reason."""
    try:
        return strict_smarts(smarts, limits)
    except SmilesError as error:
        raise ChemQueryError(str(error)) from None
