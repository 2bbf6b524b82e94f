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

Larger variants (written elsewhere, never into the repository; a `<output>.provenance.json` beside
the file records the source, its sha256, the settings and every molecule kept out as a target
analogue):

    # 30,000 MOSES + NCI blocks, the PMO targets and their analogues (ECFP4 Tanimoto >= 0.7) left out
    .venv/bin/python scripts/make_default_library.py --target 30000 --exclude-targets \
        --output artifacts/libraries/moses_nci_30k.smi.gz
    # blocks from ZINC250k (PMO's screening set: --exclude-targets is then required)
    .venv/bin/python scripts/make_default_library.py \
        --source zinc250k ../shared/data/molecules/zinc250k.csv.gz --no-nci \
        --target 25000 --max-heavy-atoms 30 --exclude-targets \
        --output artifacts/libraries/zinc250k_25k.smi.gz

`--exclude-targets` drops, after standardisation and before selection, every molecule whose ECFP4
Tanimoto to a PMO target (synflow.rewards.pmo.PMO_TARGETS: each molecule an oracle compares with)
is at least `--analogue-threshold`; the selection then fills the target count from the rest.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from rdkit import RDConfig

from reactions.index import compute_compatibility_index
from reactions.library import DESCRIPTOR_NAMES, BuildingBlockLibrary, build_library
from reactions.readers import RawRecord, read_records
from reactions.similarity import DEFAULT_ANALOGUE_THRESHOLD, SimilarityFilterResult, exclude_similar
from reactions.standardise import StandardisationSettings
from reactions.templates import default_template_set

PACKAGE = "molsets==0.3.1"
MEMBER = "moses/dataset/data/train.csv.gz"
OUTPUT = Path(__file__).resolve().parents[1] / "reactions" / "data" / "default_building_blocks.smi.gz"
SOURCES = ("moses", "zinc250k")


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


def zinc250k_records(path: Path, n: int | None, seed: int) -> list[RawRecord]:
    """ZINC250k (mol_opt's zinc.txt re-packed as a one-column CSV) as records `ZINC250k-<row>`, row
    being the 1-based molecule number in that file; all of it, or a seeded sample of `n` rows."""
    records = [RawRecord(row=r.row, line=r.line, id=f"ZINC250k-{r.row}", smiles=r.smiles)
               for r in read_records(path) if r.smiles]
    if n is None or n >= len(records):
        return records
    rows = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[r] for r in rows]


def pmo_targets() -> dict[str, str]:
    """The PMO target molecules (name -> SMILES); scripts may import synflow, `reactions` may not."""
    from synflow.rewards.pmo import PMO_TARGETS

    return dict(PMO_TARGETS)


def select_blocks(library: BuildingBlockLibrary, target: int, per_slot: int,
                  allowed: np.ndarray | None = None, workers: int | None = None,
                  fill: str = "smallest", seed: int = 0) -> list[int]:
    """Blocks fitting some slot: up to `per_slot` smallest per slot, then the smallest overall
    (`fill="random"`: then a seeded random draw, so the sizes follow the source's).

    `allowed` (a boolean mask over the library) keeps the rest out of both rounds.
    """
    index = compute_compatibility_index(library, default_template_set(), workers=workers)
    heavy = library.descriptors[:, DESCRIPTOR_NAMES.index("heavy_atoms")]
    chosen: dict[int, None] = {}
    for template in default_template_set():
        for slot in range(template.arity):
            blocks = np.asarray(index.blocks_for(template.index, slot))
            if allowed is not None:
                blocks = blocks[allowed[blocks]]
            smallest = blocks[np.argsort(heavy[blocks], kind="stable")][:per_slot]
            chosen.update(dict.fromkeys(smallest.tolist()))
    matched = np.setdiff1d(np.arange(len(library)), index.unmatched_blocks())
    if allowed is not None:
        matched = matched[allowed[matched]]
    if fill == "random":
        order = np.random.default_rng(seed).permutation(len(matched))
    else:
        order = np.argsort(heavy[matched], kind="stable")
    for block in matched[order].tolist():
        if len(chosen) >= target:
            break
        chosen.setdefault(block)
    return sorted(chosen)


def write_smi_gz(library: BuildingBlockLibrary, rows: list[int], path: Path) -> None:
    text = "".join(f"{library.smiles[i]}\t{library.ids[i]}\n" for i in rows)
    with path.open("wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as out:
        out.write(text.encode())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", nargs="+", default=["moses"], metavar=("NAME", "PATH"),
                        help="moses (the molsets wheel, default) or 'zinc250k PATH' (a one-column "
                             "SMILES CSV such as ../shared/data/molecules/zinc250k.csv.gz)")
    parser.add_argument("--wheel", type=Path, help="a downloaded molsets wheel (default: pip download)")
    parser.add_argument("--sample", type=int, default=None,
                        help="source molecules to standardise (default: 120,000 for moses, all of zinc250k)")
    parser.add_argument("--nci", action=argparse.BooleanOptionalAction, default=True,
                        help="add RDKit's NCI first-5K set (default: yes)")
    parser.add_argument("--target", type=int, default=10_000, help="blocks to keep")
    parser.add_argument("--per-slot", type=int, default=150, help="smallest blocks kept for every slot")
    parser.add_argument("--max-heavy-atoms", type=int, default=22)
    parser.add_argument("--fill", choices=("smallest", "random"), default="smallest",
                        help="after the per-slot round, add the smallest blocks (default) or random ones")
    parser.add_argument("--seed", type=int, default=20240531)
    parser.add_argument("--exclude-targets", action="store_true",
                        help="leave out the PMO targets and their analogues (ECFP4 Tanimoto >= threshold)")
    parser.add_argument("--analogue-threshold", type=float, default=DEFAULT_ANALOGUE_THRESHOLD)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--output", "--out", dest="out", type=Path, default=OUTPUT,
                        help="where to write the .smi.gz (default: the bundled library's path)")
    args = parser.parse_args(argv)
    name = args.source[0]
    if name not in SOURCES or len(args.source) != (2 if name == "zinc250k" else 1):
        parser.error("--source is 'moses' or 'zinc250k PATH'")
    if name == "zinc250k" and not args.exclude_targets:
        parser.error("ZINC250k is PMO's screening set: a library made from it needs --exclude-targets")
    return args


def source_records(args: argparse.Namespace, provenance: dict[str, object]) -> tuple[list[RawRecord], str]:
    """The sampled source molecules (plus NCI when asked) and the name of the file they came from."""
    if args.source[0] == "zinc250k":
        path = Path(args.source[1])
        provenance["source"] = {"name": "zinc250k", "file": path.name,
                                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        records = zinc250k_records(path, args.sample, args.seed)
        print(f"ZINC250k: {len(records)} molecules from {path.name}")
        member = path.name
    else:
        with tempfile.TemporaryDirectory() as scratch:
            wheel = args.wheel or download_wheel(Path(scratch))
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            print(f"source: {wheel.name} sha256 {digest}")
            smiles = read_moses_train(wheel)
        provenance["source"] = {"name": "moses", "package": PACKAGE, "wheel": wheel.name,
                                "sha256": digest, "member": MEMBER}
        sample = 120_000 if args.sample is None else args.sample
        print(f"MOSES train: {len(smiles)} molecules; sampling {sample} (seed {args.seed})")
        records = sample_records(smiles, sample, args.seed)
        member = MEMBER
    if args.nci:
        records += nci_records()
    return records, member


def exclusion_mask(library: BuildingBlockLibrary, threshold: float,
                   provenance: dict[str, object]) -> np.ndarray:
    """Library rows that are not a PMO target or an analogue of one; the removed ones go into provenance."""
    targets = pmo_targets()
    names = {smiles: name for name, smiles in targets.items()}
    result: SimilarityFilterResult = exclude_similar(library.smiles, list(targets.values()), threshold)
    allowed = np.zeros(len(library), dtype=bool)
    allowed[result.kept] = True
    provenance["excluded_analogues"] = {
        "threshold": threshold, "fingerprint": "Morgan radius 2, 2048 bits (ECFP4), Tanimoto",
        "targets": targets, "count": len(result.removed),
        "molecules": [{"id": library.ids[r.position], "smiles": r.smiles, "target": names[r.target],
                       "similarity": round(r.similarity, 4)} for r in result.removed],
    }
    print(f"excluded {len(result.removed)} PMO targets/analogues (ECFP4 Tanimoto >= {threshold})")
    for removed in result.removed:
        print(f"  {library.ids[removed.position]} {removed.smiles}  {names[removed.target]} "
              f"{removed.similarity:.3f}")
    return allowed


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    provenance: dict[str, object] = {"script": "scripts/make_default_library.py",
                                     "arguments": sys.argv[1:] if argv is None else argv}
    records, member = source_records(args, provenance)
    settings = StandardisationSettings(max_heavy_atoms=args.max_heavy_atoms)
    library = build_library(records, settings, workers=args.workers, source=member)
    print(f"standardised: {len(library)} kept, {len(library.rejected)} rejected")
    allowed = exclusion_mask(library, args.analogue_threshold, provenance) if args.exclude_targets else None
    rows = select_blocks(library, args.target, args.per_slot, allowed, args.workers, args.fill, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_smi_gz(library, rows, args.out)
    seconds = time.perf_counter() - started
    size = args.out.stat().st_size / 1e6
    print(f"wrote {len(rows)} blocks to {args.out} ({size:.2f} MB) in {seconds:.0f} s")
    if args.out.resolve() != OUTPUT:  # the bundled library's provenance is reactions/data/README.md
        provenance.update({
            "nci": "rdkit Data/NCI/first_5K.smi" if args.nci else None,
            "standardisation": settings.as_dict(), "sample": args.sample, "seed": args.seed,
            "per_slot": args.per_slot, "fill": args.fill, "target": args.target, "blocks": len(rows),
            "standardised": len(library), "rejected": len(library.rejected),
            "output_sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
            "seconds": round(seconds, 1),
        })
        sidecar = args.out.with_name(args.out.name + ".provenance.json")
        sidecar.write_text(json.dumps(provenance, indent=2) + "\n")
        print(f"provenance: {sidecar}")


if __name__ == "__main__":
    main()
