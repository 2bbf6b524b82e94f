"""What a user meets: the README's curl run (the `optimise` preset, 20 steps × 16) and a run with no
preset (`sample`: uniform P_B, every block), both on the bundled library and templates, CPU.

    python benchmarks/defaults.py [--sample-steps 5]

Prints, per run: seconds to build the trainer (library, templates, compatibility index, networks),
the first step, the median later step, the total, and the trainer's time split (chemistry, network,
reward).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

from synflow.callbacks import TrainerCallback
from synflow.config import parse_run_config
from synflow.runtime import configure_torch_threads
from synflow.trainer import Trainer


class StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.times = [time.perf_counter()]

    def on_step(self, step: int, total: int, info: dict[str, float]) -> None:
        self.times.append(time.perf_counter())


def measure(body: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    clock = StepClock()
    trainer = Trainer(parse_run_config(body), callbacks=[clock])
    built = time.perf_counter() - started
    trainer.run()
    steps = [b - a for a, b in zip(clock.times[1:], clock.times[2:], strict=False)]
    later = sorted(steps[1:]) or [float("nan")]
    return {
        "build_s": round(built, 2),
        "first_step_s": round(steps[0], 2),
        "median_step_s": round(later[len(later) // 2], 2),
        "total_s": round(time.perf_counter() - started, 1),
        "split_s": {k: round(v, 2) for k, v in trainer.timers.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample-steps", type=int, default=5)
    args = parser.parse_args()
    configure_torch_threads()
    qed = {"components": [{"type": "qed"}]}
    runs = {
        "README curl: optimise preset, 20 steps x 16": {
            "preset": "optimise",
            "name": "qed",
            "reward": qed,
            "training": {"steps": 20, "batch_size": 16},
        },
        f"no preset (sample), {args.sample_steps} steps x 16": {
            "reward": qed,
            "training": {"steps": args.sample_steps, "batch_size": 16},
        },
    }
    report = {name: measure(body) for name, body in runs.items()}
    report["machine"] = f"{platform.machine()} cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}"
    report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
