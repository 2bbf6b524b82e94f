"""Regenerate reactions/data/default_building_blocks.smi.gz from two openly licensed PyPI packages.

Sources:
- `molsets` 0.3.1 (MOSES, Polykovskiy et al. 2020; MIT licence, (c) 2018 Insilico Medicine): its wheel
  ships moses/dataset/data/train.csv.gz, 1,584,663 purchasable molecules filtered from ZINC Clean
  Leads. MOSES dropped charged molecules, and ZINC stores acids as carboxylates, so it has almost no
  carboxylic acids or aldehydes; hence the second source.
- `rdkit` (BSD licence): its wheel ships Data/NCI/first_5K.smi, the first 5,000 structures of the
  NCI Open Database (US government work, public domain), rich in acids, aldehydes and halides.

The script downloads the molsets wheel with pip (or takes `--wheel PATH`), reads the file straight out
of the zip, standardises a seeded random sample together with the NCI set, indexes everything against
the default template set, and keeps blocks that fit at least one template slot: the smallest
`--per-slot` blocks of every slot (so every handle type is represented), then the smallest of the
rest up to `--target`. The output is deterministic for a given wheel, RDKit and seed.

    .venv/bin/python scripts/make_default_library.py            # downloads molsets==0.3.1
    .venv/bin/python scripts/make_default_library.py --wheel molsets-0.3.1-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from rdkit import RDConfig

from reactions.index import compute_compatibility_index
from reactions.library import DESCRIPTOR_NAMES, BuildingBlockLibrary, build_library
from reactions.readers import RawRecord, read_records
from reactions.standardise import StandardisationSettings
from reactions.templates import default_template_set

PACKAGE = "molsets==0.3.1"
MEMBER = "moses/dataset/data/train.csv.gz"
OUTPUT = Path(__file__).resolve().parents[1] / "reactions" / "data" / "default_building_blocks.smi.gz"


def download_wheel(directory: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "-d", str(directory), PACKAGE]
    subprocess.run(command, check=True)
    return next(directory.glob("molsets-*.whl"))


def read_moses_train(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as raw:
        lines = io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8").read().splitlines()
    if lines[0].strip() != "SMILES":
        raise ValueError(f"unexpected header in {MEMBER}: {lines[0]!r}")
    return [line.split(",")[0] for line in lines[1:]]


def nci_records() -> list[RawRecord]:
    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    return [RawRecord(row=r.row, line=r.line, id=f"NCI-first5K-{r.id}", smiles=r.smiles)
            for r in read_records(path)]


def sample_records(smiles: list[str], n: int, seed: int) -> list[RawRecord]:
    rows = sorted(random.Random(seed).sample(range(len(smiles)), min(n, len(smiles))))
    return [RawRecord(row=r + 1, line=r + 2, id=f"MOSES-train-{r + 1}", smiles=smiles[r]) for r in rows]


def select_blocks(library: BuildingBlockLibrary, target: int, per_slot: int) -> list[int]:
    """Blocks fitting some slot: up to `per_slot` smallest per slot, then the smallest overall."""
    index = compute_compatibility_index(library, default_template_set())
    heavy = library.descriptors[:, DESCRIPTOR_NAMES.index("heavy_atoms")]
    chosen: dict[int, None] = {}
    for template in default_template_set():
        for slot in range(template.arity):
            blocks = np.asarray(index.blocks_for(template.index, slot))
            smallest = blocks[np.argsort(heavy[blocks], kind="stable")][:per_slot]
            chosen.update(dict.fromkeys(smallest.tolist()))
    matched = np.setdiff1d(np.arange(len(library)), index.unmatched_blocks())
    for block in matched[np.argsort(heavy[matched], kind="stable")].tolist():
        if len(chosen) >= target:
            break
        chosen.setdefault(block)
    return sorted(chosen)


def write_smi_gz(library: BuildingBlockLibrary, rows: list[int], path: Path) -> None:
    text = "".join(f"{library.smiles[i]}\t{library.ids[i]}\n" for i in rows)
    with path.open("wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as out:
        out.write(text.encode())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help="a downloaded molsets wheel (default: pip download)")
    parser.add_argument("--sample", type=int, default=120_000, help="MOSES molecules to standardise")
    parser.add_argument("--target", type=int, default=10_000, help="blocks to keep")
    parser.add_argument("--per-slot", type=int, default=150, help="smallest blocks kept for every slot")
    parser.add_argument("--max-heavy-atoms", type=int, default=22)
    parser.add_argument("--seed", type=int, default=20240531)
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        wheel = args.wheel or download_wheel(Path(scratch))
        print(f"source: {wheel.name} sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}")
        smiles = read_moses_train(wheel)
    print(f"MOSES train: {len(smiles)} molecules; sampling {args.sample} (seed {args.seed})")
    settings = StandardisationSettings(max_heavy_atoms=args.max_heavy_atoms)
    records = sample_records(smiles, args.sample, args.seed) + nci_records()
    library = build_library(records, settings, source=MEMBER)
    print(f"standardised: {len(library)} kept, {len(library.rejected)} rejected")
    rows = select_blocks(library, args.target, args.per_slot)
    write_smi_gz(library, rows, args.out)
    print(f"wrote {len(rows)} blocks to {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
