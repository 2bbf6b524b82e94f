"""SynFlowNet benchmarks: throughput (sampled / trained trajectories per second, time split, ratio to
a bare-RDKit chemistry floor) and divergences side by side.

    python benchmarks/synflownet.py throughput [--steps 20]
    python benchmarks/synflownet.py samplers [--samplers 1 2] [--blocks-per-template K] [--executor ray]
        (actor–learner: N sampler processes against 1, exact block choice unless K is given)
    python benchmarks/synflownet.py divergences [--steps 100 --seeds 0 1 2] [--members ...]
        (uniform backward policy and exact block choice by default; resumes from --out)

Data: ../shared/data/building_blocks/zincfrag_10k.smi.gz and ../shared/data/templates/synflownet_hb.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

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
RESULTS = ROOT / "benchmarks" / "results"


SETTINGS: dict[str, Any] = {"blocks": BLOCKS, "batch": 64, "max_reactions": 3, "backward": "uniform"}


def config(steps: int, seed: int = 0, samplers: int = 1, **loss: Any) -> Any:
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
            "training": {
                "steps": steps,
                "batch_size": batch,
                "seed": seed,
                "lr": 1e-3,
                "log_every": 10_000,
                "samplers": samplers,
                "executor": SETTINGS.get("executor", "local"),
            },
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


def _rates(trainer: Trainer, steps: int, pooled: bool) -> tuple[list[Trajectory], float, float]:
    """(the sampled trajectories, sampled/s with sampling alone, trained/s of whole training steps)."""
    batch = SETTINGS["batch"]
    sampled: list[Trajectory] = []
    t0 = time.perf_counter()
    for _ in range(steps):
        sampled += trainer._pooled_draw(batch) if pooled else trainer.sample(batch)
    sample_rate = len(sampled) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return sampled, sample_rate, steps * batch / (time.perf_counter() - t0)


def samplers(counts: list[int], steps: int, warmup: int) -> dict[str, Any]:
    """Sampled and trained trajectories/s with 1 sampler (in the learner's process) and with N sampler
    processes (``training.samplers``), each after ``warmup`` training steps, in one process, against the
    bare-RDKit floor of the 1-sampler run's trajectories; ratios against both."""
    out: dict[str, Any] = {
        "block_mode": f"approximate (k = {SETTINGS['blocks_per_template']})"
        if SETTINGS.get("blocks_per_template")
        else "exact (every compatible block)",
        "backward_policy": SETTINGS["backward"],
        "executor": SETTINGS.get("executor", "local"),
        "load_before": round(os.getloadavg()[0], 2),
    }
    floor = None
    for n in counts:
        trainer = Trainer(config(steps * 2 + warmup + 1, samplers=n))
        try:
            for _ in range(warmup):
                trainer.train_step()
            sampled, sample_rate, train_rate = _rates(trainer, steps, pooled=n > 1)
            if floor is None:
                floor = len(sampled) / chemistry_floor(sampled, list(trainer.chem.templates))
                out["floor_per_s"] = round(floor, 1)
            out[f"samplers_{n}"] = {
                "sampled_per_s": round(sample_rate, 1),
                "trained_per_s": round(train_rate, 1),
                "sampled_over_floor": round(sample_rate / floor, 2),
                "trained_over_floor": round(train_rate / floor, 2),
                "stale_batches": trainer.stale_batches,
                "valid_fraction": round(sum(t.valid for t in sampled) / len(sampled), 3),
                "timers_s": {k: round(v, 2) for k, v in trainer.timers.items()},
            }
        finally:
            trainer.close()
    base = out[f"samplers_{counts[0]}"]
    for n in counts[1:]:
        row = out[f"samplers_{n}"]
        row["sampled_over_first"] = round(row["sampled_per_s"] / base["sampled_per_s"], 2)
        row["trained_over_first"] = round(row["trained_per_s"] / base["trained_per_s"], 2)
    out["load_after"] = round(os.getloadavg()[0], 2)
    return out


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


DIVERGENCES: dict[str, dict[str, Any]] = {
    "reverse_kl (TB)": {"divergence": "reverse_kl"},
    "forward_kl": {"divergence": "forward_kl"},
    "hellinger": {"divergence": "hellinger"},
    "pearson": {"divergence": "pearson"},
    "neyman": {"divergence": "neyman"},
    "js": {"divergence": "js"},
    "tv": {"divergence": "tv"},
    "alpha 0.75→1.2": {
        "divergence": "alpha",
        "alpha_schedule": {"start": 0.75, "end": 1.2, "kind": "linear"},
    },
    "alpha 1.2": {"divergence": "alpha", "alpha": 1.2},
}
CURVE_KEYS = ("top10_reward", "top100_reward", "modes", "scaffolds", "unique", "log_p_corr", "log_p_error")
FINAL_KEYS = ("top100_reward", "top10_reward", "modes", "scaffolds", "top100_diversity", "unique")


def divergence_run(name: str, seed: int, steps: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One member, one seed (in its own process): the final metrics and a curve every 10 steps."""
    from synflow.callbacks import TrainerCallback

    SETTINGS.update(settings)
    configure_torch_threads(1)
    loss = DIVERGENCES[name]
    if "alpha_schedule" in loss:
        loss = {**loss, "alpha_schedule": {**loss["alpha_schedule"], "steps": steps}}
    cfg = config(steps, seed, **loss)
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"log_every": 10})})
    curve: list[dict[str, float]] = []
    batch = SETTINGS["batch"]

    class Curve(TrainerCallback):
        def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
            curve.append(
                {"trajectories": step * batch, **{k: metrics[k] for k in CURVE_KEYS if k in metrics}}
            )

    started = time.perf_counter()
    trainer = Trainer(cfg, callbacks=[Curve()])
    summary = trainer.run().metrics
    return {
        "member": name,
        "seed": seed,
        "steps": steps,
        "final": {k: summary[k] for k in FINAL_KEYS},
        "curve": curve,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def divergences(
    steps: int, seeds: list[int], out: Path, processes: int, members: list[str]
) -> dict[str, Any]:
    """Every member × seed not yet in ``out`` (so an interrupted run resumes), two processes at a time;
    ``out`` is rewritten after each run."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    report: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"runs": []}
    report["settings"] = {k: str(v) for k, v in SETTINGS.items()} | {"steps": steps}
    done = {(r["member"], r["seed"]) for r in report["runs"] if r["steps"] == steps}
    todo = [(m, s) for s in seeds for m in members if (m, s) not in done]
    print(f"{len(todo)} runs to do, {len(done)} already in {out}", flush=True)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx, max_tasks_per_child=1) as pool:
        futures = [pool.submit(divergence_run, m, s, steps, dict(SETTINGS)) for m, s in todo]
        for future in futures:
            run = future.result()
            report["runs"].append(run)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(report, indent=1))
            tmp.replace(out)
            print(run["member"], run["seed"], run["final"], f"{run['wall_s']} s", flush=True)
    return report


def divergence_table(report: dict[str, Any]) -> list[str]:
    """Mean over seeds of the final metrics, and the modes found after ¼, ½ and all of the run."""
    rows = [
        "| divergence | seeds | top-100 QED | top-10 | modes at ¼ / ½ / 1 of the run (per seed at the end) |"
        " Bemis-Murcko scaffolds | top-100 diversity | unique | log p(x) corr |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in DIVERGENCES:
        runs = sorted((r for r in report["runs"] if r["member"] == name), key=lambda r: r["seed"])
        if not runs:
            continue

        def mean(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return sum(r["final"][key] for r in runs) / len(runs)

        def at(fraction: float, key: str, runs: list[dict[str, Any]] = runs) -> float:
            values = [r["curve"][max(0, round(len(r["curve"]) * fraction) - 1)].get(key, 0.0) for r in runs]
            return sum(values) / len(values)

        modes = ", ".join(str(int(r["final"]["modes"])) for r in runs)
        corr = at(1.0, "log_p_corr")
        rows.append(
            f"| {name} | {len(runs)} | {mean('top100_reward'):.3f} | {mean('top10_reward'):.3f} | "
            f"{at(0.25, 'modes'):.0f} / {at(0.5, 'modes'):.0f} / {mean('modes'):.0f} ({modes}) | "
            f"{mean('scaffolds'):,.0f} | {mean('top100_diversity'):.3f} | {mean('unique'):,.0f} | "
            f"{corr:.2f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["throughput", "divergences", "blocks", "samplers"])
    parser.add_argument(
        "--samplers", type=int, nargs="+", default=[1, 2], help="samplers: the counts to compare"
    )
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--blocks", type=Path, default=BLOCKS, help="building-block file")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-reactions", type=int, default=3)
    parser.add_argument("--backward", choices=["uniform", "maximum_likelihood", "route"], default="uniform")
    parser.add_argument(
        "--blocks-per-template",
        type=int,
        default=None,
        help="divergences: subsample k blocks (default: exact)",
    )
    parser.add_argument("--members", nargs="+", default=list(DIVERGENCES), choices=list(DIVERGENCES))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "synflownet-divergences-exact.json")
    args = parser.parse_args()
    SETTINGS.update(
        blocks=args.blocks, batch=args.batch, max_reactions=args.max_reactions, backward=args.backward
    )
    configure_torch_threads()
    SETTINGS["executor"] = args.executor
    if args.what == "samplers":
        SETTINGS["blocks_per_template"] = args.blocks_per_template
        result = samplers(args.samplers, args.steps, args.warmup)
    elif args.what == "throughput":
        result = throughput(args.steps, args.warmup)
    elif args.what == "blocks":
        result = block_choice(args.steps, args.warmup)
    else:
        SETTINGS["blocks_per_template"] = args.blocks_per_template
        report = divergences(args.steps, args.seeds, args.out, args.processes, args.members)
        print("\n".join(divergence_table(report)))
        return
    result["backward_policy"] = args.backward
    result["machine"] = f"{platform.machine()} {platform.processor()} cpus={__import__('os').cpu_count()}"
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
