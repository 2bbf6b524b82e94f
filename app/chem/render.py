"""Depictions (SVG) and SDF records of stored molecules."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from rdkit import Chem, rdBase
from rdkit.Chem.Draw import rdMolDraw2D

from app.chem.parsing import ChemQueryError, check_smiles
from reactions.smiles import parse_smiles_or_none


def _svg(smiles: str, width: int, height: int) -> str:
    check_smiles(smiles)
    mol = parse_smiles_or_none(smiles)
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
    mol = parse_smiles_or_none(smiles)
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
