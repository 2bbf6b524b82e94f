"""The vectorised Gobbi 2D pharmacophore fingerprint against RDKit's ``Gen2DFingerprint``.

    .venv/bin/python benchmarks/pharm2d.py [--molecules 2000] [--joined 300] [--seed 2026]

Both run in this process on the same molecules: a ZINC250k sample (drug-sized) and pairs of those
molecules bonded together (40-60 heavy atoms, the size the PMO hop tasks reward after three
reactions). Prints, per set, the number of molecules whose bits differ (must be 0), the mean time
per molecule of each, and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import random
import sys
import time
from pathlib import Path

from rdkit import Chem, RDLogger
from rdkit.Chem.Pharm2D import Generate, Gobbi_Pharm2D

ROOT = Path(__file__).resolve().parents[1]
# the project root first: the molecule joiner lives with the equality test (tests/)
sys.path.insert(0, str(ROOT))

from synflow.rewards.pharm2d import Pharm2DFingerprint  # noqa: E402
from tests.synflow.rewards.test_pharm2d import joined  # noqa: E402

ZINC = ROOT.parent / "shared" / "data" / "molecules" / "zinc250k.csv.gz"


def compare(mols: list[Chem.Mol], fast: Pharm2DFingerprint) -> tuple[int, float, float]:
    """(molecules whose bits differ, RDKit ms per molecule, vectorised ms per molecule)."""
    reference = vectorised = 0.0
    differ = 0
    for mol in mols:
        start = time.perf_counter()
        expected = Generate.Gen2DFingerprint(mol, Gobbi_Pharm2D.factory)
        middle = time.perf_counter()
        got = fast(mol)
        reference, vectorised = reference + middle - start, vectorised + time.perf_counter() - middle
        differ += list(expected.GetOnBits()) != list(got.GetOnBits())
    return differ, 1000 * reference / len(mols), 1000 * vectorised / len(mols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--joined", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    with gzip.open(ZINC, "rb") as handle:
        rows = [row[0].strip() for row in csv.reader(io.TextIOWrapper(handle))][1:]
    rng = random.Random(args.seed)
    zinc = [Chem.MolFromSmiles(s) for s in rng.sample(rows, args.molecules)]
    pairs = (joined(*rng.sample(zinc, 2)) for _ in range(4 * args.joined))
    big = [m for m in pairs if m is not None][: args.joined]
    fast = Pharm2DFingerprint(Gobbi_Pharm2D.factory)
    for name, mols in [("ZINC250k sample", zinc), ("bonded pairs", big)]:
        differ, reference, vectorised = compare(mols, fast)
        atoms = sum(m.GetNumAtoms() for m in mols) / len(mols)
        print(f"{name}: {len(mols)} molecules, {atoms:.1f} heavy atoms on average, {differ} differ; "
              f"RDKit {reference:.2f} ms, vectorised {vectorised:.2f} ms per molecule, "
              f"{reference / vectorised:.1f}x")


if __name__ == "__main__":
    main()
