"""Docking throughput, local worker processes against Ray actors, and a projection to N machines.

    .venv/bin/python benchmarks/docking_ray.py                        # 8 molecules, exhaustiveness 8
    .venv/bin/python benchmarks/docking_ray.py --molecules 16 --out benchmarks/results/docking_ray.json

Docks the same drug-like ZINC molecules (a fixed seed's draw from ``../shared/data/molecules/
zinc250k.csv.gz`` with 14–20 heavy atoms, at most 3 rotatable bonds, QED ≥ 0.6, neutral) into
ESR1_ant (20 Å box, the docking component's default exhaustiveness 8) with ``DockingPool`` (1 and 2
worker processes) and ``RayDockingPool`` (1 and 2 actors on a local Ray instance, or on
``--ray-address``), one after the other in this process. Each pool is started and waited on
(``wait_ready``: process or actor start-up and grid maps, reported apart) before the batch is timed,
so the rate is docking alone. Prints JSON (``--out FILE`` also saves it): molecules per second per
setting, whether every setting gave the same affinities, the load average, and a projection to N
machines from the measured one-actor rate.

The projection assumes docking is embarrassingly parallel: one actor per core, each with its own
Vina and grid maps, no shared state, a few hundred bytes of SMILES and result per ligand, so N
machines of C cores dock N·C times the one-actor rate. A batch of B new molecules then takes
about ceil(B / (N·C)) rounds of the mean ligand time, and never less than its slowest ligand.

A default run docks 8 molecules four times: about 5 minutes on 2 idle cores (a drug-like molecule
takes 6–12 s of one core at exhaustiveness 8 here), longer when the cores are shared.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SETTINGS = (("local", 1), ("local", 2), ("ray", 1), ("ray", 2))


def pick_molecules(n: int, seed: int) -> list[str]:
    """``n`` drug-like, neutral, fairly rigid ZINC molecules (canonical SMILES), always the same ones."""
    from rdkit import Chem
    from rdkit.Chem import QED, rdMolDescriptors

    with gzip.open(SHARED / "molecules" / "zinc250k.csv.gz", "rt") as handle:
        next(handle)
        rows = [line.strip() for line in handle if line.strip()]
    random.Random(seed).shuffle(rows)
    picked: list[str] = []
    for smiles in rows:
        mol = Chem.MolFromSmiles(smiles)
        if (
            mol is not None
            and 14 <= mol.GetNumHeavyAtoms() <= 20
            and rdMolDescriptors.CalcNumRotatableBonds(mol) <= 3
            and Chem.GetFormalCharge(mol) == 0
            and QED.qed(mol) >= 0.6
        ):
            picked.append(Chem.MolToSmiles(mol))
        if len(picked) == n:
            return picked
    raise RuntimeError(f"only {len(picked)} molecules pass the filters")


def start_ray(address: str | None, num_cpus: int) -> Any:
    """Join ``address``, or start a local instance of its own (never another one found on the machine)."""
    from synflow.ray_support import connect_ray, import_ray

    if address is not None:
        return connect_ray(address)
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING, log_to_driver=False,
    )
    return ray


def measure(executor: str, workers: int, settings: Any, molecules: list[str]) -> dict[str, Any]:
    """Start a pool, wait until every docker is ready, then time one batch of ``molecules``."""
    from synflow.rewards.docking import DockingPool, RayDockingPool

    start = time.perf_counter()
    pool: DockingPool | RayDockingPool
    if executor == "ray":
        pool = RayDockingPool(settings, workers, timeout_s=1800)
    else:
        pool = DockingPool(settings, workers, timeout_s=1800)
    try:
        pool.wait_ready()
        startup = time.perf_counter() - start
        start = time.perf_counter()
        results = pool.dock(molecules)
        elapsed = time.perf_counter() - start
    finally:
        pool.close()
    ligand_seconds = [r.seconds for r in results]
    return {
        "executor": executor,
        "workers": workers,
        "startup_s": round(startup, 2),
        "elapsed_s": round(elapsed, 2),
        "molecules_per_s": round(len(molecules) / elapsed, 4),
        "molecules_per_s_per_worker": round(len(molecules) / elapsed / workers, 4),
        "mean_ligand_s": round(sum(ligand_seconds) / len(results), 2),
        "max_ligand_s": round(max(ligand_seconds), 2),
        # wall time the workers spent outside docking (dispatch, results, idle at the end), per ligand
        "overhead_per_ligand_s": round((elapsed * workers - sum(ligand_seconds)) / len(results), 3),
        "errors": [r.error for r in results if r.error],
        "affinities": [r.affinity for r in results],
    }


def projection(
    per_actor_rate: float, mean_ligand_s: float, max_ligand_s: float, cores_per_machine: int, batch: int,
) -> list[dict[str, Any]]:
    """Docking rate and the learner's docking wait per batch of ``batch`` new molecules on N machines."""
    rows = []
    for machines in (1, 2, 4, 8, 16, 32):
        actors = machines * cores_per_machine
        rounds = math.ceil(batch / actors)
        rows.append({
            "machines": machines,
            "actors": actors,
            "molecules_per_s": round(actors * per_actor_rate, 2),
            "molecules_per_hour": round(3600 * actors * per_actor_rate),
            "batch_docking_s": round(max(rounds * mean_ligand_s, max_ligand_s), 1),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--molecules", type=int, default=8, help="how many ZINC molecules (default 8)")
    parser.add_argument("--exhaustiveness", type=int, default=8, help="Vina's (the component's default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="which molecules are drawn")
    parser.add_argument("--ray-address", default=None, help="an existing cluster; default: a local instance")
    parser.add_argument("--cores-per-machine", type=int, default=16, help="for the projection (default 16)")
    parser.add_argument("--batch", type=int, default=64, help="new molecules per step, for the projection")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()

    from synflow.rewards.docking import DockingSettings, receptor_box

    receptor, center = receptor_box(SHARED / "receptors" / "ESR1_ant")
    settings = DockingSettings(receptor, center, (20.0, 20.0, 20.0), exhaustiveness=args.exhaustiveness)
    molecules = pick_molecules(args.molecules, args.seed)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load_before = os.getloadavg()
    began = time.perf_counter()
    ray = start_ray(args.ray_address, num_cpus=cores)
    try:
        runs = [measure(executor, workers, settings, molecules) for executor, workers in SETTINGS]
    finally:
        ray.shutdown()
    by_setting = {(r["executor"], r["workers"]): r for r in runs}
    one_actor = by_setting[("ray", 1)]

    def rate(executor: str, workers: int) -> float:
        return float(by_setting[(executor, workers)]["molecules_per_s"])

    report = {
        "benchmark": "docking_ray",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {cores} cores, {platform.processor() or platform.machine()}",
        "python": sys.version.split()[0],
        "ray": ray.__version__,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.perf_counter() - began, 1),
        "receptor": "ESR1_ant", "box_A": 20, "exhaustiveness": args.exhaustiveness,
        "molecules": molecules,
        "same_affinities": all(r["affinities"] == runs[0]["affinities"] for r in runs),
        "runs": runs,
        "speedup_2_over_1": {
            executor: round(rate(executor, 2) / rate(executor, 1), 2) for executor in ("local", "ray")
        },
        "ray_over_local_1_worker": round(rate("ray", 1) / rate("local", 1), 3),
        "projection": {
            "assumption": (
                "embarrassingly parallel: one actor per core, each with its own Vina and grid maps, so N "
                "machines of C cores dock N*C times the measured one-actor rate; a batch takes "
                "ceil(B / (N*C)) rounds of the mean ligand time and at least its slowest ligand. The "
                "learner waits on docking only while that batch time exceeds its own time per step "
                "(training, plus sampling where samplers do not overlap it)."
            ),
            "per_actor_molecules_per_s": one_actor["molecules_per_s"],
            "cores_per_machine": args.cores_per_machine,
            "batch": args.batch,
            "rows": projection(
                one_actor["molecules_per_s"], one_actor["mean_ligand_s"], one_actor["max_ligand_s"],
                args.cores_per_machine, args.batch,
            ),
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
