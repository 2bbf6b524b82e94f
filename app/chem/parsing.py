"""User-supplied chemistry for the service: limits checked before RDKit works, query parsing with reasons."""

from __future__ import annotations

from dataclasses import dataclass

from rdkit import Chem, rdBase


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
