"""The SMILES parsers everything else uses, strict (raises with the reason) and lenient (None), and the
strict SMARTS parser.

``parse_smiles`` is for input a user must hear about (a library row, a reference molecule, a query):
it names the SMILES and gives RDKit's reason, telling a syntax error from a chemistry error, and can
bound length and atom count before RDKit sanitises (ring perception is quadratic in ring size, so a
huge input would hold the GIL for seconds). ``parse_smiles_or_none`` is for molecules the program
made itself or scores in bulk (sampled products, reward inputs): invalid simply means None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rdkit import Chem, rdBase

__all__ = [
    "INPUT_LIMITS",
    "InputLimits",
    "SmilesError",
    "canonical_smiles",
    "parse_smarts",
    "parse_smiles",
    "parse_smiles_or_none",
    "smarts_recursion_depth",
]


class SmilesError(ValueError):
    """A SMILES (or SMARTS) that does not give a molecule (or query); the message names it and gives
    the reason."""


@dataclass(frozen=True)
class InputLimits:
    """Bounds on chemistry a user types (references, queries, filters), checked before RDKit works.

    RDKit holds the GIL: one 4,000-atom ring takes about a second to sanitise (ring perception grows
    quadratically) and a 10^4-atom one about 17 s. Text length is checked first (free), then atoms on
    an unsanitised parse (linear), then SMARTS recursion depth, so every accepted input is cheap.
    """

    max_chars: int = 1000
    max_atoms: int = 150
    max_smarts_recursion: int = 4


INPUT_LIMITS = InputLimits()


def parse_smiles(smiles: str, limits: InputLimits | None = None) -> Chem.Mol:
    """A sanitised molecule, or ``SmilesError`` naming ``smiles`` with RDKit's reason.

    With ``limits``, the length is checked before any parsing and the atom count on an unsanitised
    parse (linear time) before sanitisation.
    """
    max_chars = limits.max_chars if limits else None
    max_atoms = limits.max_atoms if limits else None
    text = smiles.strip()
    if not text:
        raise SmilesError("empty SMILES")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if max_chars is not None and len(text) > max_chars:
        raise SmilesError(f"SMILES is {len(text)} characters long; at most {max_chars} are accepted")
    with rdBase.CaptureErrorLog() as capture:
        raw = Chem.MolFromSmiles(text, sanitize=False)
        if raw is None:
            raise SmilesError(f"{shown!r} is not valid SMILES: {_log_reason(capture.messages)}")
        if max_atoms is not None and raw.GetNumAtoms() > max_atoms:
            raise SmilesError(f"SMILES has {raw.GetNumAtoms()} atoms; at most {max_atoms} are accepted")
        try:
            Chem.SanitizeMol(raw)
        except Exception as error:  # RDKit raises several exception classes for chemistry problems
            raise SmilesError(f"{shown!r} is not a valid molecule: {error}") from None
        # MolFromSmiles perceives stereo after sanitising; without this double-bond stereo is left
        # unassigned and the InChIKey loses its stereo layer (C/C=C/C would key as but-2-ene).
        Chem.AssignStereochemistry(raw, cleanIt=True, force=True)
    # The same molecule MolFromSmiles would give (sanitised, explicit hydrogens merged).
    return Chem.RemoveHs(raw) if _has_explicit_h_atoms(raw) else raw


def _has_explicit_h_atoms(mol: Chem.Mol) -> bool:
    return any(atom.GetAtomicNum() == 1 for atom in mol.GetAtoms())


def _log_reason(log_text: str, kind: str = "SMILES") -> str:
    lines = [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line).strip() for line in log_text.splitlines()]
    lines = [line.removeprefix(f"{kind} Parse Error: ") for line in lines if line]
    return lines[0] if lines else "syntax error"


def parse_smiles_or_none(smiles: str | None) -> Chem.Mol | None:
    """A sanitised molecule, or None for anything RDKit rejects (never raises, never logs)."""
    if not smiles or not smiles.strip():
        return None
    with rdBase.BlockLogs():
        try:
            return Chem.MolFromSmiles(smiles.strip())
        except Exception:  # RDKit raises on a few pathological inputs instead of returning None
            return None


def inchikey(smiles: str) -> str | None:
    """The standard InChIKey (about 0.4 ms: InChI generation), or None when RDKit cannot parse the
    SMILES or make an InChI for it."""
    mol = parse_smiles_or_none(smiles)
    if mol is None:
        return None
    with rdBase.BlockLogs():
        key = Chem.MolToInchiKey(mol)
    return key or None


def canonical_smiles(smiles: str | None) -> str | None:
    """RDKit's canonical isomeric SMILES, or None when the input does not parse."""
    mol = parse_smiles_or_none(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


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


def parse_smarts(smarts: str, limits: InputLimits | None = None) -> Chem.Mol:
    """A SMARTS query, or ``SmilesError`` naming ``smarts`` with RDKit's reason or the limit it breaks."""
    text = smarts.strip()
    if not text:
        raise SmilesError("empty SMARTS")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if limits is not None:
        if len(text) > limits.max_chars:
            raise SmilesError(
                f"SMARTS is {len(text)} characters long; at most {limits.max_chars} are accepted"
            )
        depth = smarts_recursion_depth(text)
        if depth > limits.max_smarts_recursion:
            raise SmilesError(
                f"SMARTS nests recursive $(...) {depth} deep; at most {limits.max_smarts_recursion} levels"
            )
    with rdBase.CaptureErrorLog() as capture:
        query = Chem.MolFromSmarts(text)
    if query is None:
        raise SmilesError(f"{shown!r} is not valid SMARTS: {_log_reason(capture.messages, 'SMARTS')}")
    if limits is not None and query.GetNumAtoms() > limits.max_atoms:
        raise SmilesError(f"SMARTS has {query.GetNumAtoms()} atoms; at most {limits.max_atoms} are accepted")
    return query
