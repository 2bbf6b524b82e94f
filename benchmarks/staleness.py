"""What actor–learner staleness costs in quality (``training.samplers`` > 1).

    python benchmarks/staleness.py exact [--steps 600 --seeds 0 1]
        the tiny enumerable setting of tests/synflow/tiny_setting.py: the exact L1 distance between the
        trained sampler's terminal distribution and R/Z after the same number of learner steps, with 1
        sampler (on-policy) and with 2 sampler processes at several ``max_staleness`` bounds
    python benchmarks/staleness.py qed [--steps 60]
        zincfrag_10k × synflownet_hb, QED, batch 64: the reward curve (mean and top-10 reward of each
        step's batch) per learner step, 1 sampler against 2

Each row says how stale the trained batches really were (mean learner steps behind) and how many
batches were dropped as too stale. Prints JSON; ``--out FILE`` writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.synflow.tiny_setting and tests.synflow.test_exactness's helpers

from synflow.callbacks import TrainerCallback  # noqa: E402
from synflow.runtime import configure_torch_threads  # noqa: E402
from synflow.trainer import Trainer  # noqa: E402

# (samplers, max_staleness)
SETTINGS = [(1, 0), (2, 1), (2, 4), (2, 16)]


def _label(samplers: int, staleness: int) -> str:
    return "1 sampler (on-policy)" if samplers == 1 else f"2 samplers, max_staleness {staleness}"


def _staleness(trainer: Trainer) -> dict[str, float]:
    return {"mean_staleness": round(trainer.mean_staleness, 2), "stale_dropped": trainer.stale_batches}


def exact(steps: int, seeds: list[int]) -> dict[str, Any]:
    from tests.synflow.test_exactness import l1_to_target
    from tests.synflow.tiny_setting import tiny_chemistry, tiny_config

    rows: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        for samplers, staleness in SETTINGS:
            config = tiny_config(
                training={
                    "steps": steps,
                    "seed": seed,
                    "lr": 5e-3,
                    "lr_schedule": "cosine",
                    "samplers": samplers,
                    "max_staleness": staleness,
                }
            )
            started = time.perf_counter()
            trainer = Trainer(config, chemistry=tiny_chemistry())
            trainer.run()
            row = {"seed": seed, "l1": round(l1_to_target(trainer), 4), **_staleness(trainer)}
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.setdefault(_label(samplers, staleness), []).append(row)
            print(_label(samplers, staleness), row, file=sys.stderr, flush=True)
    return {
        "setting": "tiny (tests/synflow/tiny_setting.py), reverse_kl on-policy, lr 5e-3 cosine, batch 32",
        "steps": steps,
        "rows": rows,
        "mean_l1": {k: round(sum(r["l1"] for r in v) / len(v), 4) for k, v in rows.items()},
    }


class _Curve(TrainerCallback):
    def __init__(self) -> None:
        self.points: list[dict[str, float]] = []

    def on_samples(self, samples: list[Any]) -> None:
        rewards = sorted((s.reward for s in samples), reverse=True)
        if rewards:
            self.points.append(
                {"mean": sum(rewards) / len(rewards), "top10": sum(rewards[:10]) / len(rewards[:10])}
            )


def qed(steps: int, seed: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import synflownet

    synflownet.SETTINGS.update(backward="route", blocks_per_template=None)
    out: dict[str, Any] = {
        "setting": "zincfrag_10k × synflownet_hb, ≤ 3 reactions, batch 64, QED β 16, route P_B, exact block "
        "choice, reverse_kl",
        "steps": steps,
    }
    for samplers, staleness in ((1, 0), (2, 4)):
        config = synflownet.config(steps, seed, samplers=samplers)
        training = config.training.model_copy(update={"max_staleness": staleness})
        config = config.model_copy(update={"training": training})
        curve = _Curve()
        started = time.perf_counter()
        trainer = Trainer(config, callbacks=[curve])
        trainer.run()
        points = curve.points
        tail = points[-10:]
        out[_label(samplers, staleness)] = {
            "first10_mean_reward": round(sum(p["mean"] for p in points[:10]) / 10, 4),
            "last10_mean_reward": round(sum(p["mean"] for p in tail) / len(tail), 4),
            "last10_top10_reward": round(sum(p["top10"] for p in tail) / len(tail), 4),
            "curve_mean_every_10": [round(p["mean"], 3) for p in points[::10]],
            "seconds": round(time.perf_counter() - started, 1),
            **_staleness(trainer),
        }
        print(_label(samplers, staleness), out[_label(samplers, staleness)], file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["exact", "qed"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    configure_torch_threads(1)
    load = os.getloadavg()[0]
    if args.what == "exact":
        result = exact(args.steps or 600, args.seeds)
    else:
        result = qed(args.steps or 60, args.seeds[0])
    result["load_before_after"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
