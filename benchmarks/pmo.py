"""The PMO protocol (Gao et al. 2022) for SynFlowNet: per task, train until 10,000 oracle calls
(unique canonical SMILES), AUC of the mean top-10 logged every 100 calls, several seeds.

    python benchmarks/pmo.py [--tasks qed median1 ...] [--seeds 0 1 2 3 4] [--budget 10000]

Prints mean ± std per task, the sum, and the published sums for comparison
(../shared/data/benchmarks/pmo_auc_top10.csv). Every molecule carries a synthesis route.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/reactions.py would shadow the reactions package when run as a script
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np

from synflow.config import parse_run_config
from synflow.metrics import pmo_auc_top_k
from synflow.runtime import configure_torch_threads
from synflow.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PUBLISHED = DATA / "benchmarks" / "pmo_auc_top10.csv"
TASKS = [
    "albuterol_similarity",
    "amlodipine_mpo",
    "celecoxib_rediscovery",
    "deco_hop",
    "fexofenadine_mpo",
    "isomers_c7h8n2o2",
    "isomers_c9h10n2o2pf2cl",
    "median1",
    "median2",
    "mestranol_similarity",
    "osimertinib_mpo",
    "perindopril_mpo",
    "ranolazine_mpo",
    "scaffold_hop",
    "sitagliptin_mpo",
    "thiothixene_rediscovery",
    "troglitazone_rediscovery",
    "valsartan_smarts",
    "zaleplon_mpo",
    "qed",
]


def run_task(
    task: str, seed: int, budget: int, blocks: Path | None, device: str, backward: str
) -> dict[str, Any]:
    t0 = time.perf_counter()
    env: dict[str, Any] = {"max_reactions": 3, "blocks_per_template": 64, "backward_policy": backward}
    if blocks is not None:
        env["building_blocks"] = str(blocks)
    config = parse_run_config(
        {
            "reward": {"components": [{"type": "pmo", "task": task}], "beta": 32.0, "budget": budget},
            "loss": {"divergence": "alpha", "alpha_schedule": {"start": 0.75, "end": 1.2, "steps": 300}},
            "environment": env,
            "model": {"hidden": 64, "layers": 2, "block_hidden": 128},
            "replay": {"fraction": 0.25, "sampling": "reward", "capacity": 2000},
            "training": {
                "steps": 100_000,
                "batch_size": 64,
                "seed": seed,
                "lr": 1e-3,
                "device": device,
                "exploration": 0.05,
                "log_every": 100_000,
            },
        }
    )
    trainer = Trainer(config)
    while not trainer.reward.exhausted:
        trainer.train_step()
    rewards = list(trainer.metrics.rewards.values())[:budget]
    return {
        "auc": pmo_auc_top_k(rewards, k=10, freq=100, max_calls=budget),
        "oracle_calls": len(rewards),
        "trajectories": trainer.trajectories_trained,
        "steps": trainer.step,
        "top10_mean": float(np.mean(sorted(rewards)[-10:])),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def published_sums(tasks: list[str]) -> dict[str, float]:
    with PUBLISHED.open() as handle:
        rows = {r["task"]: r for r in csv.DictReader(handle)}
    methods = ["reinvent", "graph_ga", "synnet", "dog_gen", "gflownet"]
    return {m: round(sum(float(rows[t][f"{m}_mean"]) for t in tasks if t in rows), 3) for m in methods}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--blocks", type=Path, default=None, help="building blocks (default: bundled)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--backward",
        choices=["uniform", "maximum_likelihood", "route"],
        default="route",
        help="P_B (route: the fastest, and PMO scores optimisation, not exact sampling ∝ R)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON, rewritten after every task")
    args = parser.parse_args()
    configure_torch_threads()
    results: dict[str, Any] = {}
    report: dict[str, Any] = {}
    for task in args.tasks:
        runs = [
            run_task(task, seed, args.budget, args.blocks, args.device, args.backward) for seed in args.seeds
        ]
        aucs = [r["auc"] for r in runs]
        results[task] = {"mean": float(np.mean(aucs)), "std": float(np.std(aucs)), "runs": runs}
        print(task, json.dumps(results[task]), flush=True)
        report = {
            "tasks": results,
            "sum": sum(r["mean"] for r in results.values()),
            "budget": args.budget,
            "seeds": args.seeds,
            "backward_policy": args.backward,
            "published_sums_same_tasks": published_sums(list(results)),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
