"""Purchasability: is a molecule in a catalogue of molecules one can buy?

Two kinds of catalogue, both behind ``Catalogue.contains(mol)``:

* ``BloomCatalogue``: a Bloom filter bundled with the ``molbloom`` wheel (``zinc-instock-mini``:
  ZINC20's 9.2 M in-stock molecules in 10 MB). "In" means *probably* purchasable: a Bloom filter has
  false positives and never false negatives for the strings it holds. Measured here (RDKit 2026.09,
  ``benchmarks/chem_filters.py purchasable``, BENCHMARKS.md): 7.0 % of 20,000 random hexapeptides
  and 6.9 % of 50,000 random strings test positive, matching molbloom's own catalogue note ("FPR of
  0.07"; its README's "1 %" is wrong for this filter); but only 32 % of 10,000 purchasable ZINC22
  fragments test positive (ZINC20's stock, and keys from an older RDKit's canonical SMILES), so a
  negative answer says little.
  Keys are molbloom's: canonical isomeric kekulé SMILES. Nothing is downloaded: molbloom's other
  catalogues need a download and are refused.
* ``SetCatalogue``: an exact set from a molecule file (.smi/.csv/.sdf, gzipped or not) a user gives:
  each entry's largest fragment, neutralised, keyed by InChIKey (default: tautomer- and
  drawing-robust) or canonical isomeric SMILES (``match="smiles"``, about 5x faster to load).

``PurchasableScorer`` scores 1 (in the catalogue) or 0; its notes are ``{"purchasable": bool}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem.MolStandardize import rdMolStandardize

from reactions.readers import RawRecord, read_records
from reactions.smiles import SmilesError, parse_smiles
from synflow.rewards.base import Scorer

CatalogueMatch = Literal["inchikey", "smiles"]
# The Bloom filters inside the molbloom wheel (molbloom/data/*.bloom): only these work offline.
BUNDLED_CATALOGUES = {
    "zinc-instock-mini": "ZINC20 in stock (9,227,726 molecules), molbloom's bundled Bloom filter: "
    "'probably purchasable', about 7 % false positives (measured), no false negatives for its keys",
}
# molbloom knows these too, but fetches them from the internet on first use: refused by name.
DOWNLOAD_ONLY_CATALOGUES = ("zinc20", "zinc-instock", "surechembl")


class Catalogue(Protocol):
    source: str

    def contains(self, mol: Chem.Mol) -> bool: ...


class BloomCatalogue:
    """A Bloom filter bundled with molbloom, loaded once (10 MB, ~10 ms)."""

    def __init__(self, name: str) -> None:
        if name not in BUNDLED_CATALOGUES:
            raise ValueError(
                f"{name!r} is not a bloom filter bundled with molbloom; "
                f"bundled: {', '.join(BUNDLED_CATALOGUES)}"
            )
        from molbloom.bloom import BloomFilter  # the compiled filter; molbloom's buy() keeps a global

        self.source = name
        self._filter = BloomFilter(str(resources.files("molbloom").joinpath("data", f"{name}.bloom")))

    @staticmethod
    def key(mol: Chem.Mol) -> str:
        """molbloom's key (``molbloom.canon``): canonical isomeric SMILES in kekulé form."""
        return Chem.MolToSmiles(mol, canonical=True, isomericSmiles=True, kekuleSmiles=True)

    def contains(self, mol: Chem.Mol) -> bool:
        return self.key(mol) in self._filter


@dataclass(frozen=True)
class RejectedRow:
    line: int
    smiles: str
    reason: str


@dataclass
class CatalogueFile:
    """A catalogue file's keys, and the entries that gave none, with the reason."""

    keys: frozenset[str]
    entries: int
    rejected: list[RejectedRow] = field(default_factory=list)


class CatalogueKeys:
    """The key of a molecule in a ``SetCatalogue``: its largest fragment, neutralised, then its
    InChIKey or canonical isomeric SMILES. Salts and charge states a vendor lists (``Cl.NCC...``)
    meet the free base a route uses."""

    def __init__(self, match: CatalogueMatch = "inchikey") -> None:
        if match not in ("inchikey", "smiles"):
            raise ValueError(f"match must be 'inchikey' or 'smiles', not {match!r}")
        self.match = match
        self._fragment = rdMolStandardize.LargestFragmentChooser(preferOrganic=True)
        self._uncharger = rdMolStandardize.Uncharger(canonicalOrder=True)

    def __call__(self, mol: Chem.Mol) -> str:
        if len(Chem.GetMolFrags(mol)) > 1:
            mol = self._fragment.choose(mol)
        mol = self._uncharger.uncharge(mol)
        if self.match == "smiles":
            return str(Chem.MolToSmiles(mol))
        with rdBase.BlockLogs():  # InChI warnings (e.g. undefined stereo) are not errors here
            key = Chem.MolToInchiKey(mol)
        if not key:
            raise SmilesError("no InChIKey")
        return str(key)


def _record_mol(record: RawRecord) -> Chem.Mol:
    if record.molblock:
        with rdBase.BlockLogs():
            mol = Chem.MolFromMolBlock(record.molblock)
        if mol is None:
            raise SmilesError("the SDF record does not give a molecule")
        return mol
    if not record.smiles:
        raise SmilesError("no SMILES")
    mol = parse_smiles(record.smiles)
    # parse_smiles sanitises a raw parse, which leaves double-bond stereo unperceived: without this
    # the InChIKey of `C/C=C/C` would lose its stereo layer and miss the same molecule from RDKit.
    Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    return mol


def read_catalogue(path: str | Path, match: CatalogueMatch = "inchikey") -> CatalogueFile:
    """Every entry of a molecule file as a catalogue key; unreadable rows are listed with the reason.
    Raises ``ValueError`` (``MoleculeFileError``) for a file that is not a molecule file at all."""
    keys: set[str] = set()
    rejected: list[RejectedRow] = []
    key_of = CatalogueKeys(match)
    entries = 0
    for record in read_records(path):
        entries += 1
        try:
            keys.add(key_of(_record_mol(record)))
        except (SmilesError, ValueError, RuntimeError) as error:
            rejected.append(RejectedRow(record.line, record.smiles[:200], str(error)[:300]))
    return CatalogueFile(frozenset(keys), entries, rejected)


class SetCatalogue:
    """An exact catalogue read from a molecule file (see ``read_catalogue``)."""

    def __init__(self, path: str | Path, match: CatalogueMatch = "inchikey") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"catalogue file {path} does not exist")
        self.source = str(path)
        self.key = CatalogueKeys(match)
        self.file = read_catalogue(path, match)
        if not self.file.keys:
            raise ValueError(f"catalogue file {path}: no readable molecules in {self.file.entries} entries")

    def __len__(self) -> int:
        return len(self.file.keys)

    def contains(self, mol: Chem.Mol) -> bool:
        try:
            return self.key(mol) in self.file.keys
        except (SmilesError, RuntimeError):
            return False  # no key (no InChI for it): not in any list of keys


def open_catalogue(source: str, match: CatalogueMatch = "inchikey") -> Catalogue:
    """A bundled bloom filter by name, or a catalogue file by path."""
    if source in BUNDLED_CATALOGUES:
        return BloomCatalogue(source)
    if source in DOWNLOAD_ONLY_CATALOGUES:
        raise ValueError(
            f"molbloom's {source!r} filter needs a download, which synflow never does; use "
            f"{', '.join(BUNDLED_CATALOGUES)} or a catalogue file"
        )
    return SetCatalogue(source, match)


def flags(catalogue: Catalogue, smiles: Sequence[str]) -> Iterator[bool | None]:
    """Whether each SMILES is in ``catalogue``; None for one RDKit cannot read."""
    for s in smiles:
        with rdBase.BlockLogs():
            mol = Chem.MolFromSmiles(s)
        yield None if mol is None else catalogue.contains(mol)


class PurchasableScorer(Scorer):
    """1 if the molecule is in the catalogue (for a bloom filter: probably), else 0; the notes say
    ``{"purchasable": bool}``."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._found: dict[str, bool] = {}  # the last batch's answers by SMILES, for ``notes``

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        found = [self.catalogue.contains(mol) for mol in mols]
        self._found = dict(zip(smiles, found, strict=True))
        return np.array(found, dtype=np.float64)

    def notes(self, smiles: Sequence[str]) -> list[dict[str, Any]]:
        return [{"purchasable": self._found[s]} if s in self._found else {} for s in smiles]
