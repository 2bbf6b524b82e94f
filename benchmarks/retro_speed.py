"""Sampling speed with the exact uniform backward policy: the plain retro-analysis and reachability
recursion (``SynthesisChemistry(fast=False)``, the code before the lazy proofs) against the lazy
proofs, with no store, a cold store and a warm one, in one process. Every measurement uses the same
policy and seed, so it samples the same trajectories; they are checked to be identical (states,
actions and every backward choice, i.e. P_B's support).

    python benchmarks/retro_speed.py [--settings zincfrag default] [--batches N] [--warmup N]

Settings (≤ 3 reactions, batch 64, QED, β 16, blocks_per_template 64):
- ``zincfrag``: ../shared/data zincfrag_10k blocks × synflownet_hb templates (skipped when absent);
  2 training steps, then 3 timed batches, as ``benchmarks/synflownet.py throughput`` does;
- ``default``: the bundled default library and templates, whose retro-analyses are far larger (the
  old path needs minutes a batch): no training step, 1 timed batch, and only old / cold / warm.
Figures: sampled trajectories per second (wall clock, and per CPU second of this process, which
the machine's other load disturbs less), the retro-analyses run, the bare-RDKit floor of
``benchmarks/synflownet.py`` over the same trajectories, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synflownet import BLOCKS, CACHE, TEMPLATES, chemistry_floor

from reactions.index import build_compatibility_index
from reactions.library import default_library, load_building_blocks
from reactions.templates import default_template_set, load_template_set
from synflow.chemistry import SynthesisChemistry
from synflow.config import parse_run_config
from synflow.runtime import configure_torch_threads
from synflow.trainer import Trainer
from synflow.trajectory import Trajectory

BATCH = 64
OLD = "old (plain recursion)"


@dataclass(frozen=True)
class Plan:
    warmup: int  # training steps before the timed batches
    batches: int  # timed batches of 64
    runs: tuple[str, ...]  # which measurements, besides the old path


ALL_RUNS = (
    "new, no store",
    "new, cold store",
    "new, warm store (same seed)",
    "new, warm store (another seed)",
)
PLANS = {
    "zincfrag": Plan(2, 3, ALL_RUNS),
    "default": Plan(0, 1, ("new, cold store", "new, warm store (same seed)")),
}


def run_config(seed: int) -> Any:
    return parse_run_config(
        {
            "reward": {"components": [{"type": "qed"}], "beta": 16.0},
            "environment": {"max_reactions": 3, "backward_policy": "uniform", "blocks_per_template": 64},
            "model": {"hidden": 64, "layers": 2, "block_hidden": 128},
            "replay": {"fraction": 0.0},
            "training": {"steps": 10, "batch_size": BATCH, "seed": seed, "log_every": 10_000},
        }
    )


def load_setting(name: str) -> tuple[Any, Any, Any]:
    if name == "zincfrag":
        library, templates = load_building_blocks(BLOCKS), load_template_set(TEMPLATES)
    else:
        library, templates = default_library(), default_template_set()
    return library, templates, build_compatibility_index(library, templates, cache_dir=CACHE)


def signature(trajs: list[Trajectory]) -> list[Any]:
    """What must not change: the states, actions and the backward choices (P_B's support)."""
    return [
        (
            t.smiles,
            [(s.state, s.action) for s in t.steps],
            [(b.child, b.parents, b.chosen) for b in t.backward],
        )
        for t in trajs
    ]


def measure(parts: tuple[Any, Any, Any], plan: Plan, seed: int, **chem_options: Any) -> dict[str, Any]:
    """``plan.warmup`` training steps, then ``plan.batches`` × 64 sampled trajectories timed, with a
    fresh chemistry (fresh in-memory caches, as a new sampler process has)."""
    chem = SynthesisChemistry(*parts, max_reactions=3, min_reactions=1, **chem_options)
    trainer = Trainer(run_config(seed), chemistry=chem)
    for _ in range(plan.warmup):
        trainer.train_step()
    before, chemistry_s, load = dict(chem.stats), trainer.timers["chemistry"], os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    trajs: list[Trajectory] = []
    for _ in range(plan.batches):
        trajs += trainer.sample(BATCH)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    chem.flush_store()
    return {
        "per_s": round(len(trajs) / wall, 1),
        "per_cpu_s": round(len(trajs) / cpu, 1),
        "chemistry_s": round(trainer.timers["chemistry"] - chemistry_s, 2),
        "load": [round(load, 2), round(os.getloadavg()[0], 2)],
        "stats": {k: v - before[k] for k, v in chem.stats.items() if k != "matches" and v - before[k]},
        "_trajs": trajs,
        "_templates": list(chem.templates),
    }


def compare(name: str, plan: Plan) -> dict[str, Any]:
    parts = load_setting(name)
    out: dict[str, Any] = {"plan": plan.__dict__, "load_before": round(os.getloadavg()[0], 2)}
    runs = {OLD: measure(parts, plan, 0, fast=False)}
    with tempfile.TemporaryDirectory() as store:
        for key in plan.runs:
            options: dict[str, Any] = {} if key == "new, no store" else {"store_dir": store}
            runs[key] = measure(parts, plan, 1 if "another seed" in key else 0, **options)
        out["store_mb"] = round(sum(f.stat().st_size for f in Path(store).iterdir()) / 1e6, 2)
    reference = signature(runs[OLD]["_trajs"])
    for key in runs:
        if "another seed" not in key:
            assert signature(runs[key]["_trajs"]) == reference, f"{key}: not the old path's trajectories"
    floor_s = chemistry_floor(runs[OLD]["_trajs"], runs[OLD]["_templates"])
    out["floor_per_s"] = round(len(runs[OLD]["_trajs"]) / floor_s, 1)
    for key, run in runs.items():
        out[key] = {k: v for k, v in run.items() if not k.startswith("_")}
        out[key]["of_floor"] = round(run["per_s"] / out["floor_per_s"], 2)
        out[key]["speedup_wall"] = round(run["per_s"] / runs[OLD]["per_s"], 2)
        out[key]["speedup_cpu"] = round(run["per_cpu_s"] / runs[OLD]["per_cpu_s"], 2)
    out["identical_trajectories"] = True
    out["load_after"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(PLANS), choices=list(PLANS))
    parser.add_argument("--batches", type=int, help="timed batches (default: per setting)")
    parser.add_argument("--warmup", type=int, help="training steps first (default: per setting)")
    args = parser.parse_args()
    configure_torch_threads(1)
    print(json.dumps({"machine": f"cpus={os.cpu_count()}", "load": os.getloadavg()}), flush=True)
    for name in args.settings:
        if name == "zincfrag" and not (BLOCKS.exists() and TEMPLATES.exists()):
            print(json.dumps({name: "skipped: ../shared/data is not there"}), flush=True)
            continue
        plan = PLANS[name]
        plan = Plan(
            plan.warmup if args.warmup is None else args.warmup,
            plan.batches if args.batches is None else args.batches,
            plan.runs,
        )
        print(json.dumps({name: compare(name, plan)}, indent=2), flush=True)


if __name__ == "__main__":
    main()
