"""SynFlowNet benchmarks: throughput (sampled / trained trajectories per second, time split, ratio to
a bare-RDKit chemistry floor) and divergences side by side.

    python benchmarks/synflownet.py throughput [--steps 20]
    python benchmarks/synflownet.py divergences [--steps 200 --seeds 0]

Data: ../shared/data/building_blocks/zincfrag_10k.smi.gz and ../shared/data/templates/synflownet_hb.txt.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/reactions.py would shadow the reactions package when run as a script
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from rdkit import Chem, rdBase
from rdkit.Chem import AllChem

from synflow.config import parse_run_config
from synflow.runtime import configure_torch_threads
from synflow.trainer import Trainer
from synflow.trajectory import Trajectory

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BLOCKS = DATA / "building_blocks" / "zincfrag_10k.smi.gz"
TEMPLATES = DATA / "templates" / "synflownet_hb.txt"
CACHE = ROOT / ".cache" / "bench"


SETTINGS: dict[str, Any] = {"blocks": BLOCKS, "batch": 64, "max_reactions": 3, "backward": "uniform"}


def config(steps: int, seed: int = 0, **loss: Any) -> Any:
    batch = SETTINGS["batch"]
    return parse_run_config(
        {
            "reward": {"components": [{"type": "qed"}], "beta": 16.0},
            "loss": {"divergence": "reverse_kl", **loss},
            "environment": {
                "max_reactions": SETTINGS["max_reactions"],
                "building_blocks": str(SETTINGS["blocks"]),
                "templates": str(TEMPLATES),
                "cache_dir": str(CACHE),
                "blocks_per_template": SETTINGS.get("blocks_per_template", 64),
                "backward_policy": SETTINGS["backward"],
            },
            "model": {"hidden": 64, "layers": 2, "block_hidden": 128},
            "replay": {"fraction": 0.0},
            "training": {"steps": steps, "batch_size": batch, "seed": seed, "lr": 1e-3, "log_every": 10_000},
        }
    )


def chemistry_floor(trajs: list[Trajectory], templates: list[Any]) -> float:
    """Seconds to replay ``trajs`` with bare RDKit: every reactant pattern matched against each new
    molecule (as an uncached environment must), then the chosen reaction run."""
    rxns = [AllChem.ReactionFromSmarts(t.smarts) for t in templates]
    patterns = [[r.GetReactantTemplate(i) for i in range(r.GetNumReactantTemplates())] for r in rxns]
    _quiet = rdBase.BlockLogs()
    t0 = time.perf_counter()
    for traj in trajs:
        mol = None
        for step in traj.route:
            if step["action"] == "start":
                mol = Chem.MolFromSmiles(step["building_block"]["smiles"])
                continue
            for pats in patterns:
                for p in pats:
                    mol.HasSubstructMatch(p)
            rxn = rxns[step["template"]["index"]]
            if step["action"] == "react_uni":
                reactants = (mol,)
            else:
                block = Chem.MolFromSmiles(step["building_block"]["smiles"])
                reactants = (mol, block) if step["slot"] == 0 else (block, mol)
            rxn.RunReactants(reactants)
            mol = Chem.MolFromSmiles(step["product"])
        if mol is not None and traj.valid:
            for pats in patterns:  # the final molecule is matched too (its stop/continue choices)
                for p in pats:
                    mol.HasSubstructMatch(p)
    return time.perf_counter() - t0


def throughput(steps: int, warmup: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    trainer = Trainer(config(steps + warmup))
    setup = time.perf_counter() - t0
    for _ in range(warmup):
        trainer.train_step()
    # sampling only
    for k in trainer.timers:
        trainer.timers[k] = 0.0
    t0 = time.perf_counter()
    sampled: list[Trajectory] = []
    for _ in range(steps):
        sampled += trainer.sample(SETTINGS["batch"])
    sample_s = time.perf_counter() - t0
    sample_split = dict(trainer.timers)
    # training (sample + score + loss + step)
    for k in trainer.timers:
        trainer.timers[k] = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    train_s = time.perf_counter() - t0
    floor_s = chemistry_floor(sampled, list(trainer.chem.templates))
    n = len(sampled)
    reactions = sum(t.n_reactions for t in sampled) / n
    return {
        "setup_s": round(setup, 1),
        "trajectories": n,
        "mean_reactions": round(reactions, 2),
        "valid_fraction": round(sum(t.valid for t in sampled) / n, 3),
        "sampled_per_s": round(n / sample_s, 1),
        "trained_per_s": round(steps * SETTINGS["batch"] / train_s, 1),
        "sample_split_s": {k: round(v, 2) for k, v in sample_split.items()},
        "train_split_s": {k: round(v, 2) for k, v in trainer.timers.items()},
        "floor_per_s": round(n / floor_s, 1),
        "overhead_ratio": round((sample_s / n) / (floor_s / n), 2),
        "chem_stats": trainer.chem.stats,
    }


def block_choice(steps: int, warmup: int) -> dict[str, Any]:
    """The exact block choice (every compatible block in the softmax) against the old subsample of
    k = 64 per choice, in the same process, alternating so that load changes hit both alike."""
    runs: dict[str, list[dict[str, Any]]] = {"exact (every block)": [], "subsampled k=64 (approximate)": []}
    for _ in range(2):
        for name, k in (("exact (every block)", None), ("subsampled k=64 (approximate)", 64)):
            SETTINGS["blocks_per_template"] = k
            runs[name].append(throughput(steps, warmup))
    out: dict[str, Any] = {}
    for name, results in runs.items():
        out[name] = {
            key: round(sum(r[key] for r in results) / len(results), 1)
            for key in ("sampled_per_s", "trained_per_s", "floor_per_s")
        }
        out[name]["network_s_per_training_step"] = round(
            sum(r["train_split_s"]["network"] for r in results) / (len(results) * steps), 3
        )
    exact, sub = out["exact (every block)"], out["subsampled k=64 (approximate)"]
    out["ratio_exact_over_subsampled"] = {
        "sampled": round(exact["sampled_per_s"] / sub["sampled_per_s"], 2),
        "trained": round(exact["trained_per_s"] / sub["trained_per_s"], 2),
    }
    return out


DIVERGENCES = {
    "reverse_kl (TB)": {"divergence": "reverse_kl"},
    "forward_kl": {"divergence": "forward_kl"},
    "hellinger": {"divergence": "hellinger"},
    "alpha 0.75→1.2": {
        "divergence": "alpha",
        "alpha_schedule": {"start": 0.75, "end": 1.2, "kind": "linear"},
    },
    "alpha 1.2": {"divergence": "alpha", "alpha": 1.2},
}


def divergences(steps: int, seeds: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, loss in DIVERGENCES.items():
        if "alpha_schedule" in loss:
            loss = {**loss, "alpha_schedule": {**loss["alpha_schedule"], "steps": steps}}
        runs = []
        for seed in seeds:
            trainer = Trainer(config(steps, seed, **loss))
            summary = trainer.run().metrics
            runs.append(
                {
                    k: summary[k]
                    for k in (
                        "top100_reward",
                        "top10_reward",
                        "modes",
                        "scaffolds",
                        "top100_diversity",
                        "unique",
                    )
                }
            )
        out[name] = runs
        print(name, runs, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["throughput", "divergences", "blocks"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--blocks", type=Path, default=BLOCKS, help="building-block file")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-reactions", type=int, default=3)
    parser.add_argument("--backward", choices=["uniform", "maximum_likelihood", "route"], default="uniform")
    args = parser.parse_args()
    SETTINGS.update(
        blocks=args.blocks, batch=args.batch, max_reactions=args.max_reactions, backward=args.backward
    )
    configure_torch_threads()
    if args.what == "throughput":
        result = throughput(args.steps, args.warmup)
    elif args.what == "blocks":
        result = block_choice(args.steps, args.warmup)
    else:
        result = divergences(args.steps, args.seeds)
    result["backward_policy"] = args.backward
    result["machine"] = f"{platform.machine()} {platform.processor()} cpus={__import__('os').cpu_count()}"
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
