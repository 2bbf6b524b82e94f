"""Read molecule files (.smi, .csv, .sdf; gzipped or not) into raw records with IDs and line numbers:
building-block libraries and the molecules ``synflow score`` scores."""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

SMILES_COLUMNS = ("smiles", "canonical_smiles", "smi", "smiles_string", "structure")
ID_COLUMNS = ("id", "zinc_id", "compound_id", "catalog_id", "catalogue_id", "idnumber", "mol_id", "name")


class MoleculeFileError(ValueError):
    """A molecule file that cannot be read (unknown format, no SMILES column)."""


@dataclass(frozen=True)
class RawRecord:
    """One input entry: its 1-based record number, first line, ID, and SMILES or an SDF mol block."""

    row: int
    line: int
    id: str
    smiles: str = ""
    molblock: str = ""


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def file_format(path: Path) -> str:
    """'smi', 'csv' or 'sdf' from the file name (a trailing .gz is ignored)."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    kind = suffixes[-1].lstrip(".") if suffixes else ""
    aliases = {
        "smi": "smi",
        "smiles": "smi",
        "txt": "smi",
        "csv": "csv",
        "tsv": "csv",
        "sdf": "sdf",
        "sd": "sdf",
    }
    if kind not in aliases:
        raise MoleculeFileError(
            f"{path}: unknown molecule file format {kind!r} (use .smi, .csv or .sdf, gzipped or not)"
        )
    return aliases[kind]


def read_records(path: str | Path) -> Iterator[RawRecord]:
    """Every entry of a molecule file (.smi, .csv, .sdf, gzipped or not), in file order; ``-`` reads
    SMILES lines from standard input."""
    if str(path) == "-":
        yield from _read_smi(sys.stdin, "stdin")
        return
    path = Path(path)
    readers = {"smi": _read_smi, "csv": _read_csv, "sdf": _read_sdf}
    with _open_text(path) as handle:
        yield from readers[file_format(path)](handle, path.stem.split(".")[0])


def _read_smi(handle: io.TextIOBase | TextIO, stem: str) -> Iterator[RawRecord]:
    row = 0
    for line_number, line in enumerate(handle, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if row == 0 and fields[0].lower() in SMILES_COLUMNS:
            continue  # a header line
        row += 1
        identifier = fields[1] if len(fields) > 1 else f"{stem}:{row}"
        yield RawRecord(row=row, line=line_number, id=identifier, smiles=fields[0])


def _read_csv(handle: io.TextIOBase, stem: str) -> Iterator[RawRecord]:
    header_line = handle.readline()
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(header_line, delimiters=",\t;")
    except csv.Error:  # one column (ZINC250k's ``SMILES``): nothing to sniff, any delimiter reads it
        dialect = csv.excel
    header = [h.strip().lower() for h in next(csv.reader([header_line], dialect))]
    smiles_col = next((header.index(c) for c in SMILES_COLUMNS if c in header), None)
    if smiles_col is None:
        raise MoleculeFileError(
            f"no SMILES column in the CSV header {header} (expected one of {SMILES_COLUMNS})"
        )
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    for row, fields in enumerate(csv.reader(handle, dialect), start=1):
        line_number = row + 1
        smiles = fields[smiles_col].strip() if len(fields) > smiles_col else ""
        given = fields[id_col].strip() if id_col is not None and len(fields) > id_col else ""
        identifier = given or f"{stem}:{row}"
        yield RawRecord(row=row, line=line_number, id=identifier, smiles=smiles)


def _read_sdf(handle: io.TextIOBase, stem: str) -> Iterator[RawRecord]:
    lines: list[str] = []
    first_line = 1
    row = 0
    for line_number, line in enumerate(handle, start=1):
        if line.startswith("$$$$"):
            row += 1
            yield _sdf_record(lines, row, first_line, stem)
            lines, first_line = [], line_number + 1
        else:
            lines.append(line)
    if any(line.strip() for line in lines):
        row += 1
        yield _sdf_record(lines, row, first_line, stem)


def _sdf_record(lines: list[str], row: int, first_line: int, stem: str) -> RawRecord:
    properties = _sdf_properties(lines)
    identifier = next((properties[c] for c in ID_COLUMNS if properties.get(c)), "")
    title = lines[0].strip() if lines else ""
    identifier = identifier or title or f"{stem}:{row}"
    return RawRecord(row=row, line=first_line, id=identifier, molblock="".join(lines))


def _sdf_properties(lines: list[str]) -> dict[str, str]:
    properties: dict[str, str] = {}
    for position, line in enumerate(lines):
        if line.startswith(">") and "<" in line and position + 1 < len(lines):
            name = line[line.index("<") + 1 : line.rindex(">")].strip().lower()
            properties.setdefault(name, lines[position + 1].strip())
    return properties
