"""Building-block standardisation: one molecule in, its canonical SMILES out, or the reason it was refused."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rdkit import Chem
from rdkit.Chem.MolStandardize import rdMolStandardize

from reactions.smiles import SmilesError, parse_smiles

DEFAULT_ELEMENTS = frozenset({"H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I"})


class StandardisationError(SmilesError):
    """A molecule that cannot join a library; the message is the reason a user sees."""


@dataclass(frozen=True)
class StandardisationSettings:
    """How building blocks are cleaned before they join a library (part of the library's hash)."""

    largest_fragment: bool = True
    neutralise: bool = True
    remove_stereo: bool = False
    allowed_elements: frozenset[str] = field(default=DEFAULT_ELEMENTS)
    max_heavy_atoms: int = 60
    min_heavy_atoms: int = 1

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["allowed_elements"] = sorted(self.allowed_elements)
        return data


class Standardiser:
    """Standardises molecules under one set of settings, with its RDKit queries compiled once.

    The element and charge checks run as single C++ substructure queries: iterating atoms from
    Python costs more than parsing the molecule.
    """

    def __init__(self, settings: StandardisationSettings | None = None) -> None:
        self.settings = settings or StandardisationSettings()
        table = Chem.GetPeriodicTable()
        allowed = sorted(table.GetAtomicNumber(symbol) for symbol in self.settings.allowed_elements)
        self._foreign_atom = Chem.MolFromSmarts("[" + ";".join(f"!#{z}" for z in allowed) + "]")
        self._charged_atom = Chem.MolFromSmarts("[!+0]")
        self._uncharger = rdMolStandardize.Uncharger(canonicalOrder=True)

    def __call__(self, mol: Chem.Mol) -> Chem.Mol:
        """The standardised molecule (largest fragment, neutral, checked); raises StandardisationError."""
        settings = self.settings
        if mol.GetNumAtoms() == 0:
            raise StandardisationError("empty molecule")
        if settings.largest_fragment and len(Chem.GetMolFrags(mol)) > 1:
            mol = _largest_fragment(mol)
        if settings.neutralise and mol.HasSubstructMatch(self._charged_atom):
            mol = self._uncharger.uncharge(mol)
        if settings.remove_stereo:
            Chem.RemoveStereochemistry(mol)
        self._check_composition(mol)
        return mol

    def _check_composition(self, mol: Chem.Mol) -> None:
        settings = self.settings
        if mol.HasSubstructMatch(self._foreign_atom):
            symbols = {atom.GetSymbol() for atom in mol.GetAtoms()}
            refused = sorted(symbols - settings.allowed_elements)
            raise StandardisationError(f"element(s) not allowed: {', '.join(refused)}")
        heavy = mol.GetNumHeavyAtoms()
        if heavy > settings.max_heavy_atoms:
            raise StandardisationError(f"{heavy} heavy atoms, more than the limit of "
                                       f"{settings.max_heavy_atoms}")
        if heavy < settings.min_heavy_atoms:
            raise StandardisationError(f"{heavy} heavy atoms, fewer than the minimum of "
                                       f"{settings.min_heavy_atoms}")


def standardise_mol(mol: Chem.Mol, settings: StandardisationSettings | None = None) -> Chem.Mol:
    """The standardised molecule; raises StandardisationError with the reason."""
    return Standardiser(settings)(mol)


def _largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    fragments = Chem.GetMolFrags(mol, asMols=True)
    # Most heavy atoms first, then the lexically smallest SMILES so the choice is deterministic.
    return min(fragments, key=lambda f: (-f.GetNumHeavyAtoms(), Chem.MolToSmiles(f)))


def standardise_smiles(smiles: str, settings: StandardisationSettings | None = None) -> str:
    """Canonical SMILES of the standardised molecule; raises StandardisationError with the reason."""
    return Chem.MolToSmiles(standardise_mol(parse_smiles(smiles), settings))
