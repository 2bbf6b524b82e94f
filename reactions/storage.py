"""Save a standardised library to a folder and open it again without re-standardising."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from reactions.library import BuildingBlockLibrary, FingerprintSettings, RejectedEntry
from reactions.standardise import StandardisationSettings

LIBRARY_FORMAT = 1


def save_library(library: BuildingBlockLibrary, directory: Path) -> Path:
    """Write blocks.smi, rejected.tsv, fingerprints.npy, descriptors.npy and library.json."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "blocks.smi").open("w") as handle:
        handle.writelines(f"{s}\t{i}\n" for s, i in zip(library.smiles, library.ids, strict=True))
    with (directory / "rejected.tsv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["row", "line", "id", "smiles", "reason"])
        writer.writerows([e.row, e.line, e.id, e.smiles, e.reason] for e in library.rejected)
    np.save(directory / "fingerprints.npy", library.fingerprints)
    np.save(directory / "descriptors.npy", library.descriptors)
    meta = {
        "format": LIBRARY_FORMAT, "source": library.source, "n_blocks": len(library),
        "content_hash": library.content_hash(), "settings": library.settings.as_dict(),
        "fingerprint": library.fingerprint_settings.__dict__,
        "descriptor_names": list(library.descriptor_names),
    }
    (directory / "library.json").write_text(json.dumps(meta, indent=2))
    return directory


def open_library(directory: Path) -> BuildingBlockLibrary:
    """The library saved in `directory`; fingerprints and descriptors are memory-mapped."""
    meta = json.loads((directory / "library.json").read_text())
    if meta.get("format") != LIBRARY_FORMAT:
        raise ValueError(f"{directory}: library format {meta.get('format')}, expected {LIBRARY_FORMAT}")
    pairs = [line.rstrip("\n").split("\t") for line in (directory / "blocks.smi").open()]
    settings = dict(meta["settings"])
    settings["allowed_elements"] = frozenset(settings["allowed_elements"])
    with (directory / "rejected.tsv").open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    library = BuildingBlockLibrary(
        smiles=[p[0] for p in pairs], ids=[p[1] for p in pairs],
        fingerprints=np.load(directory / "fingerprints.npy", mmap_mode="r"),
        descriptors=np.load(directory / "descriptors.npy", mmap_mode="r"),
        descriptor_names=tuple(meta["descriptor_names"]),
        rejected=[RejectedEntry(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows],
        settings=StandardisationSettings(**settings),
        fingerprint_settings=FingerprintSettings(**meta["fingerprint"]), source=meta["source"],
    )
    if library.content_hash() != meta["content_hash"]:
        raise ValueError(f"{directory}: blocks.smi does not match library.json (edited by hand?)")
    return library
