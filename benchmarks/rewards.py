"""Reward layer speed: milliseconds per molecule for each component, and docking throughput.

    .venv/bin/python benchmarks/rewards.py            # 2,000 ZINC molecules, docking 8/4 ligands
    .venv/bin/python benchmarks/rewards.py --quick    # 200 molecules, docking 4/2 ligands

Each component is timed alone on a fresh ``Reward`` (no cache hits), over molecules drawn with a
fixed seed from ``../shared/data/molecules/zinc250k.csv.gz``. Docking: molecules per minute with
1 and 2 worker processes at exhaustiveness 1 and 8 (each pool is started and warmed on one ligand
first, so the rate excludes worker start-up and grid maps), and the affinity of estradiol in
ESR1_ant at exhaustiveness 8. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import random
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ESTRADIOL = "C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc43)[C@@H]1CC[C@@H]2O"


def load_molecules(n: int, seed: int = 0) -> list[str]:
    with gzip.open(SHARED / "molecules" / "zinc250k.csv.gz", "rt") as handle:
        next(handle)
        smiles = [line.strip() for line in handle if line.strip()]
    return random.Random(seed).sample(smiles, n)


def component_specs() -> dict[str, dict]:
    from synflow.rewards.molecular import descriptor_functions
    from synflow.rewards.pmo import pmo_tasks

    clip = {"type": "clip", "low": 0.0, "high": 1.0}
    specs: dict[str, dict] = {
        "qed": {"type": "qed"},
        "sa": {"type": "sa"},
        "similarity (morgan r2, 2048 bits, 1 ref)": {"type": "similarity", "references": [ESTRADIOL]},
        "similarity (10 refs)": {"type": "similarity", "references": [ESTRADIOL] * 10},
        "substructure (2 forbidden SMARTS)": {"type": "substructure",
                                              "forbidden": ["[N+](=O)[O-]", "C(=O)Cl"]},
    }
    for name in descriptor_functions():
        specs[f"physchem {name}"] = {"type": "physchem", "descriptor": name, "transform": clip}
    for task in pmo_tasks():
        specs[f"pmo {task}"] = {"type": "pmo", "task": task}
    return specs


def time_components(smiles: list[str]) -> list[tuple[str, float, float]]:
    """(label, wall ms / molecule, CPU ms / molecule) per component, each on a fresh Reward."""
    from synflow.rewards import RewardConfig, build_reward

    rows = []
    for label, spec in component_specs().items():
        reward = build_reward(RewardConfig.model_validate({"components": [spec]}))
        wall, cpu = time.perf_counter(), time.process_time()
        reward.score(smiles)
        rows.append((label, *_per_molecule(wall, cpu, len(smiles))))
    return rows


def _per_molecule(wall: float, cpu: float, n: int) -> tuple[float, float]:
    return 1000 * (time.perf_counter() - wall) / n, 1000 * (time.process_time() - cpu) / n


def canonical_only(smiles: list[str]) -> tuple[float, float]:
    from reactions.smiles import canonical_smiles

    wall, cpu = time.perf_counter(), time.process_time()
    for s in smiles:
        canonical_smiles(s)
    return _per_molecule(wall, cpu, len(smiles))


def docking_config(exhaustiveness: int, processes: int) -> object:
    from synflow.rewards import RewardConfig
    from synflow.rewards.docking import receptor_box

    receptor, center = receptor_box(SHARED / "receptors" / "ESR1_ant")
    return RewardConfig.model_validate({"components": [{
        "type": "docking", "receptor": receptor, "center": center, "size": [20, 20, 20],
        "exhaustiveness": exhaustiveness, "processes": processes, "timeout_s": 1800,
    }]})


def docking_rate(ligands: list[str], exhaustiveness: int, processes: int) -> tuple[float, float]:
    """(molecules per minute, mean affinity) for ``ligands`` after warming the pool."""
    from synflow.rewards import build_reward

    with build_reward(docking_config(exhaustiveness, processes)) as reward:
        reward.score(["CCO"] * 1 + ["CCN"] * (processes - 1))  # start workers, compute grid maps
        start = time.perf_counter()
        batch = reward.score(ligands)
        elapsed = time.perf_counter() - start
    return 60.0 * len(ligands) / elapsed, float(batch.scores["docking_raw"].mean())


def known_ligand() -> tuple[float, float]:
    from synflow.rewards import build_reward

    start = time.perf_counter()
    with build_reward(docking_config(8, 1)) as reward:
        affinity = float(reward.score([ESTRADIOL]).scores["docking_raw"][0])
    return affinity, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 molecules, fewer ligands")
    parser.add_argument("--skip-docking", action="store_true")
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    smiles = load_molecules(n)
    print(f"# rewards benchmark, {date.today()}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, {n} ZINC molecules\n")
    print("| component | wall ms / molecule | CPU ms / molecule |\n|---|---|---|")
    print("| (parse + canonical SMILES only) | {:.3f} | {:.3f} |".format(*canonical_only(smiles)))
    for label, wall, cpu in time_components(smiles):
        print(f"| {label} | {wall:.3f} | {cpu:.3f} |")
    if args.skip_docking:
        return
    count = {1: 4 if args.quick else 8, 8: 2 if args.quick else 4}
    print("\n| exhaustiveness | ligands | 1 process (mol/min) | 2 processes (mol/min) | ratio |")
    print("|---|---|---|---|---|")
    for ex in (1, 8):
        ligands = load_molecules(count[ex], seed=1)
        one, _ = docking_rate(ligands, ex, 1)
        two, _ = docking_rate(ligands, ex, 2)
        print(f"| {ex} | {len(ligands)} | {one:.1f} | {two:.1f} | {two / one:.2f} |")
    affinity, seconds = known_ligand()
    print(f"\nestradiol in ESR1_ant (exhaustiveness 8, 20 Å box, 1 process): {affinity:.2f} kcal/mol, "
          f"{seconds:.1f} s including worker start-up")


if __name__ == "__main__":
    main()
