"""Dead ends of scaffold runs and the term that steers away from them (``loss.dead_end_weight`` λ).

    .venv/bin/python benchmarks/dead_ends.py tiny [--weights 0 0.03 0.1 0.3 1] [--steps 600]
    .venv/bin/python benchmarks/dead_ends.py library [--weights 0 0.1] [--steps 500]

* ``tiny``: the exact setting of ``tests/synflow/test_constraints.py`` (two start blocks, a pyridine
  scaffold, on-policy TB) trained at each λ; the exact terminal distribution by enumeration gives the
  dead-end mass and the L1 between the drawn molecules and R/Z.
* ``library``: the bundled 10,000-block library with a pyridine scaffold and no start blocks
  (``sample`` preset, QED, β 4, ``max_reactions`` 2, batch 32, seed 0), one ``Trainer`` per λ in this
  process; the metric ``dead_ends`` (of 32 per batch), mean ± sd over the last 100 steps.

Figures, with the machine and date: BENCHMARKS.md "Dead ends of scaffold runs".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.synflow's tiny setting and exact helpers

from synflow.callbacks import TrainerCallback  # noqa: E402
from synflow.config import parse_run_config  # noqa: E402
from synflow.runtime import configure_torch_threads  # noqa: E402
from synflow.trainer import Trainer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PYRIDINE = "c1ccncc1"


def run_tiny(weights: list[float], steps: int) -> list[dict[str, Any]]:
    from tests.synflow.test_constraints import PYRIDINE as TINY_SCAFFOLD
    from tests.synflow.test_constraints import START, molecule_l1
    from tests.synflow.test_exactness import target_and_model, train

    rows = []
    for weight in weights:
        t0 = time.perf_counter()
        trainer = train(
            steps,
            environment={"start_blocks": START, "scaffold": TINY_SCAFFOLD},
            loss={"divergence": "reverse_kl", "dead_end_weight": weight},
        )
        target, model = target_and_model(trainer)
        dead = sum(p for k, p in model.items() if not isinstance(k, str))
        rows.append({"weight": weight, "steps": steps, "dead_end_mass": dead,
                     "l1": molecule_l1(target, model), "seconds": time.perf_counter() - t0})
        r = rows[-1]
        print(f"λ {weight:g}: dead-end mass {dead:.4f}, L1 {r['l1']:.4f} ({r['seconds']:.0f} s)", flush=True)
    return rows


class DeadEnds(TrainerCallback):
    def __init__(self) -> None:
        self.per_step: list[float] = []

    def on_step(self, step: int, total: int, info: dict[str, float]) -> None:
        self.per_step.append(info.get("dead_ends", 0.0))


def library_config(weight: float, steps: int, cache: Path) -> dict[str, Any]:
    return {
        "preset": "sample",
        "name": "qed-pyridine-scaffold",
        "reward": {"components": [{"type": "qed"}], "beta": 4.0},
        "environment": {"cache_dir": str(cache), "max_reactions": 2, "scaffold": PYRIDINE},
        "loss": {"dead_end_weight": weight},
        "model": {"hidden": 64, "layers": 2, "block_hidden": 128},
        "training": {"steps": steps, "batch_size": 32, "log_every": 10, "seed": 0},
    }


def run_library(weights: list[float], steps: int, cache: Path) -> list[dict[str, Any]]:
    rows = []
    for weight in weights:
        t0 = time.perf_counter()
        counter = DeadEnds()
        with Trainer(parse_run_config(library_config(weight, steps, cache)), callbacks=[counter]) as trainer:
            outcome = trainer.run()
        last = counter.per_step[-100:]
        rows.append({
            "weight": weight, "steps": steps, "batch_size": 32,
            "dead_ends_mean": statistics.mean(last),
            "dead_ends_sd": statistics.stdev(last) if len(last) > 1 else 0.0,
            "unique": outcome.metrics.get("unique"), "top10_reward": outcome.metrics.get("top10_reward"),
            "seconds": time.perf_counter() - t0,
        })
        r = rows[-1]
        print(f"λ {weight:g}, {steps} steps: dead ends {r['dead_ends_mean']:.1f} ± {r['dead_ends_sd']:.1f} "
              f"of 32 (last {len(last)} steps), unique {r['unique']}, top-10 {r['top10_reward']}, "
              f"{r['seconds']:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("setting", choices=["tiny", "library"])
    parser.add_argument("--weights", type=float, nargs="+")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "synflow")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    configure_torch_threads()
    if args.setting == "tiny":
        rows = run_tiny(args.weights or [0, 0.03, 0.1, 0.3, 1], args.steps or 600)
    else:
        rows = run_library(args.weights or [0, 0.1], args.steps or 500, args.cache)
    result = {"setting": args.setting, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "rows": rows}
    out = args.out or RESULTS / f"dead-ends-{args.setting}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    return result


if __name__ == "__main__":
    main()
