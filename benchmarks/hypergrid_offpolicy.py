"""Why do off-policy hypergrid runs fall behind on-policy ones? Each run logs, per step, the effective
sample size of the weights e^{−Δ} over its batch, the largest |Δ| and the gradient norm, and ends
with the exact L1 to the target; off-policy is split into its parts (ε-exploration alone, replay
alone, both) and tried with gradient clipping.

    python benchmarks/hypergrid_offpolicy.py [--budget 100000] [--seeds 0] [--members reverse_kl forward_kl]
        [--out benchmarks/results/hypergrid_offpolicy.json]

Runs in a pool of 2 processes (one per core); prints one JSON object per run and the summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

GRIDS = {"4d-h8": {"dim": 4, "side": 8, "r0": 0.1}, "2d-h64": {"dim": 2, "side": 64, "r0": 1e-3}}
VARIANTS: dict[str, dict[str, Any]] = {
    "on": {},
    "epsilon 0.1": {"epsilon": 0.1},
    "replay 16+16": {"replay_capacity": 10_000, "replay_batch": 16},
    "off (both)": {"epsilon": 0.1, "replay_capacity": 10_000, "replay_batch": 16},
    "off (both), clip 1": {"epsilon": 0.1, "replay_capacity": 10_000, "replay_batch": 16, "grad_clip": 1.0},
    "epsilon 0.1, IS weights": {"epsilon": 0.1, "importance": "truncated"},
    "replay, IS weights": {"replay_capacity": 10_000, "replay_batch": 16, "importance": "truncated"},
    "off (both), IS weights": {
        "epsilon": 0.1,
        "replay_capacity": 10_000,
        "replay_batch": 16,
        "importance": "truncated",
    },
    # ε-noise on a quarter of the trajectories only: the behaviour is a trajectory-level mixture,
    # so the importance weights p/q stay below 1/(1 − ¼) at any length.
    "epsilon 0.1 on 1/4, IS weights": {"epsilon": 0.1, "explore_fraction": 0.25, "importance": "truncated"},
    "off (eps on 1/4 + replay), IS weights": {
        "epsilon": 0.1,
        "explore_fraction": 0.25,
        "replay_capacity": 10_000,
        "replay_batch": 16,
        "importance": "truncated",
    },
}


def run(member: str, variant: str, seed: int, budget: int, grid: str) -> dict[str, Any]:
    from synflow.hypergrid import HypergridConfig, HypergridTrainer
    from synflow.runtime import configure_torch_threads

    configure_torch_threads(1)
    cfg = HypergridConfig(
        **GRIDS[grid], divergence=member, seed=seed, steps=budget // 16, **VARIANTS[variant]
    )
    trainer = HypergridTrainer(cfg)
    ess, is_ess, deltas, norms, curve = [], [], [], [], []
    started = time.process_time()
    while trainer.trajectories < budget:
        result = trainer.step()
        ess.append(result.ess)
        is_ess.append(result.importance_ess)
        deltas.append(result.max_abs_delta)
        norms.append(result.grad_norm)
        if trainer.steps_done % (cfg.steps // 5) == 0:
            curve.append((trainer.trajectories, round(trainer.evaluate().l1, 4)))
    final = trainer.evaluate()
    return {
        "grid": grid,
        "member": member,
        "variant": variant,
        "seed": seed,
        "trajectories": trainer.trajectories,
        "l1": round(final.l1, 4),
        "curve": curve,
        "ess_median": round(float(np.median(ess)), 3),
        "ess_p10": round(float(np.percentile(ess, 10)), 3),
        "importance_ess_median": round(float(np.median(is_ess)), 3),
        "importance_ess_p10": round(float(np.percentile(is_ess, 10)), 3),
        "max_abs_delta_p99": round(float(np.percentile(deltas, 99)), 2),
        "grad_norm_median": round(float(np.median(norms)), 2),
        "grad_norm_p99": round(float(np.percentile(norms, 99)), 2),
        "cpu_s": round(time.process_time() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--members", nargs="+", default=["reverse_kl", "forward_kl"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--grid", choices=list(GRIDS), default="4d-h8")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    jobs = [
        (m, v, s, args.budget, args.grid) for s in args.seeds for m in args.members for v in args.variants
    ]
    results = []
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for result in pool.map(run, *zip(*jobs, strict=True)):
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.out:  # appended to the runs already there
        report = (
            json.loads(args.out.read_text())
            if args.out.exists()
            else {"grids": GRIDS, "dates": [], "runs": []}
        )
        report["dates"].append(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        report["runs"].extend({**r, "budget": args.budget} for r in results)
        args.out.write_text(json.dumps(report, indent=1))
    print("| member | variant | exact L1 | ESS median (p10) | max abs Δ p99 | grad norm median / p99 |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['member']} | {r['variant']} | {r['l1']} | {r['ess_median']} ({r['ess_p10']}) | "
            f"{r['max_abs_delta_p99']} | {r['grad_norm_median']} / {r['grad_norm_p99']} |"
        )


if __name__ == "__main__":
    main()
