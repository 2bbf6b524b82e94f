"""Building-block libraries: readers, standardisation, rejects with reasons, features."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from reactions.library import DESCRIPTOR_NAMES, library_from_smiles, load_building_blocks
from reactions.standardise import StandardisationError, StandardisationSettings, standardise_smiles

MIXED = [  # (SMILES, ID, expected outcome: canonical SMILES or a fragment of the reason)
    ("OC(=O)c1ccccc1", "acid", "O=C(O)c1ccccc1"),
    ("[O-]C(=O)c1ccccc1.[Na+]", "salt", "duplicate of row 1"),
    ("NCc1ccccc1", "amine", "NCc1ccccc1"),
    ("C1CC", "broken", "unclosed ring"),
    ("N(C)(C)(C)(C)C", "valence", "Explicit valence"),
    ("[U]", "uranium", "not allowed: U"),
    ("C" * 70, "huge", "more than the limit"),
    ("Brc1ccccc1", "bromide", "Brc1ccccc1"),
]


def _write_smi(path: Path) -> None:
    text = "SMILES\tID\n" + "".join(f"{s}\t{i}\n" for s, i, _ in MIXED)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)


def _check_mixed(library) -> None:
    assert library.smiles == ["O=C(O)c1ccccc1", "NCc1ccccc1", "Brc1ccccc1"]
    assert library.ids == ["acid", "amine", "bromide"]
    rejected = {entry.id: entry for entry in library.rejected}
    for position, (smiles, identifier, expected) in enumerate(MIXED, start=1):
        if identifier in library.ids:
            continue
        entry = rejected[identifier]
        assert expected in entry.reason, (identifier, entry.reason)
        assert entry.row == position and entry.smiles in (smiles, "")
    assert [e.row for e in library.rejected] == sorted(e.row for e in library.rejected)


@pytest.mark.parametrize("name", ["blocks.smi", "blocks.smi.gz"])
def test_smi_rejects_carry_row_id_smiles_and_reason(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    _write_smi(path)
    library = load_building_blocks(path)
    _check_mixed(library)
    salt = next(e for e in library.rejected if e.id == "salt")
    assert salt.line == 3 and salt.smiles == "[O-]C(=O)c1ccccc1.[Na+]"


def test_csv_with_header_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "blocks.csv"
    path.write_text("name,SMILES,price\n" + "".join(f"{i},{s},1.0\n" for s, i, _ in MIXED))
    _check_mixed(load_building_blocks(path))


def test_csv_with_only_a_smiles_column(tmp_path: Path) -> None:
    path = tmp_path / "blocks.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("SMILES\n" + "".join(f"{s}\n" for s, _, _ in MIXED))
    library = load_building_blocks(path)
    assert library.smiles == ["O=C(O)c1ccccc1", "NCc1ccccc1", "Brc1ccccc1"]
    assert library.ids == ["blocks:1", "blocks:3", "blocks:8"]  # file stem and row


def test_csv_without_smiles_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "blocks.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no SMILES column"):
        load_building_blocks(path)


def test_sdf_gz_with_ids_and_a_broken_record(tmp_path: Path) -> None:
    path = tmp_path / "blocks.sdf.gz"
    with gzip.open(path, "wt") as handle:
        for smiles, identifier in [("NCc1ccccc1", "B1"), ("OC(=O)C1CC1", "B2")]:
            mol = Chem.MolFromSmiles(smiles)
            mol.SetProp("_Name", f"title-{identifier}")
            mol.SetProp("ID", identifier)
            handle.write(Chem.MolToMolBlock(mol) + f"> <ID>\n{identifier}\n\n$$$$\n")
        handle.write("broken\n  nothing\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n")
    library = load_building_blocks(path)
    assert library.ids == ["B1", "B2"]
    assert library.smiles == ["NCc1ccccc1", "O=C(O)C1CC1"]
    (broken,) = library.rejected
    assert broken.row == 3 and broken.id == "broken" and "SDF" in broken.reason


def test_unknown_format_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "blocks.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError, match="unknown molecule file format"):
        load_building_blocks(path)


def test_standardise_single_smiles() -> None:
    assert standardise_smiles("C[NH3+].[Cl-]") == "CN"
    assert standardise_smiles("C[C@H](N)C(=O)O") == "C[C@H](N)C(=O)O"
    no_stereo = StandardisationSettings(remove_stereo=True)
    assert standardise_smiles("C[C@H](N)C(=O)O", no_stereo) == "CC(N)C(=O)O"
    with pytest.raises(StandardisationError, match="not allowed: Si"):
        standardise_smiles("C[Si](C)(C)C", StandardisationSettings(allowed_elements=frozenset("CNO")))
    with pytest.raises(StandardisationError, match="fewer than the minimum"):
        standardise_smiles("C", StandardisationSettings(min_heavy_atoms=2))


def test_features_match_rdkit() -> None:
    library = library_from_smiles(["NCc1ccccc1", "OC(=O)C1CC1", "NCc1ccccc1"])
    assert len(library) == 2 and library.rejected[0].reason.startswith("duplicate of row 1")
    assert library.fingerprints.shape == (2, 256) and library.fingerprints.dtype == np.uint8
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    expected = generator.GetFingerprintAsNumPy(Chem.MolFromSmiles("NCc1ccccc1"))
    assert np.array_equal(library.dense_fingerprints([0])[0], expected)
    assert library.descriptors.shape == (2, len(DESCRIPTOR_NAMES)) and library.descriptors.dtype == np.float32
    heavy = library.descriptors[:, DESCRIPTOR_NAMES.index("heavy_atoms")]
    assert heavy.tolist() == [8.0, 6.0]


def test_index_of_accepts_any_smiles_of_a_block() -> None:
    library = library_from_smiles(["NCc1ccccc1", "OC(=O)C1CC1"])
    assert library.index_of("NCc1ccccc1") == 0
    assert library.index_of("C1CC1C(O)=O") == 1
    assert library.index_of("[O-]C(=O)C1CC1") == 1
    assert library.index_of("CCO") is None and library.index_of("not a smiles") is None


def test_content_hash_tracks_blocks_ids_and_settings() -> None:
    blocks = ["NCc1ccccc1", "OC(=O)C1CC1"]
    base = library_from_smiles(blocks).content_hash()
    assert base == library_from_smiles(blocks).content_hash()
    assert base != library_from_smiles(blocks[::-1]).content_hash()
    assert base != library_from_smiles(blocks, ids=["a", "b"]).content_hash()
    smaller = StandardisationSettings(max_heavy_atoms=40)
    assert base != library_from_smiles(blocks, settings=smaller).content_hash()


def test_parallel_and_serial_loading_agree(tmp_path: Path) -> None:
    smiles = [f"{'C' * (i % 9 + 1)}N{'C' * (i // 9 % 5)}O" for i in range(300)] + ["C1CC", "[U]"]
    path = tmp_path / "many.smi"
    path.write_text("".join(f"{s} id{i}\n" for i, s in enumerate(smiles)))
    serial = load_building_blocks(path, workers=1)
    parallel = load_building_blocks(path, workers=2)
    assert serial.smiles == parallel.smiles and serial.ids == parallel.ids
    assert np.array_equal(serial.fingerprints, parallel.fingerprints)
    assert [(e.row, e.reason) for e in serial.rejected] == [(e.row, e.reason) for e in parallel.rejected]
    assert len(serial) == 45 and len(serial.rejected) == 300 - 45 + 2


def test_zinc_fragments_load(zinc_library) -> None:
    library = zinc_library
    assert len(library) + len(library.rejected) == 10_000
    assert len(library) >= 9_900
    assert library.ids[0].startswith("ZINC")
    assert len(set(library.smiles)) == len(library)
