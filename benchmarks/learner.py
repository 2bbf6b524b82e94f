"""The learner alone: trained trajectories/s of gradient steps on pre-sampled batches, on CPU and CUDA.

    python benchmarks/learner.py [--devices auto cpu] [--batches 64 256 1024] [--pool 1024]
        [--steps 10] [--library bundled|shared] [--out FILE] [--time-limit 300] [--profile]

A fixed pool of trajectories is sampled once (on the CPU, with the bundled library and templates, or
``--library shared``: ../shared/data zincfrag_10k × synflownet_hb), then batches drawn from it train
the policy, so the figures are the learner's alone (no chemistry, no rewards). Per device and batch
size:

- ``optimise_warm``: ``Trainer.optimise`` as the product runs it, the molecules' graphs already cached
  (a learner that sampled them itself featurised them then);
- ``optimise_cold``: the same with the featuriser's cache emptied before each step (a learner fed by
  sampler processes featurises every state itself, with RDKit, on its critical path);
- ``prefetched``: each batch's inputs (graphs, index tensors) built in a background thread while the
  previous batch trains (from an empty cache), and the step's figures read once after the optimiser
  step instead of before the backward pass;
- ``packed``: each batch's graphs featurised in another process while the previous batch trains (as
  sampler processes would, sending a ``GraphPack``), preloaded into the learner's empty cache, the
  rest of the inputs built by the learner, the step as in ``prefetched``;
- ``split_ms``: one step taken apart, synchronising after each part: inputs from an empty cache and
  from a warm one, forward (with the copy to the device and the f-TB loss), backward, optimiser.

With CUDA: GPU utilisation (NVML through ``torch.cuda.utilization``, else ``nvidia-smi``) sampled
during each timed loop, and the peak memory allocated. Prints one JSON; ``--out`` writes it too, after
every batch size, so a run cut short still leaves its figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from models.featurize import GraphPack, MolFeaturizer  # noqa: E402
from synflow.config import RunConfig, parse_run_config  # noqa: E402
from synflow.losses import ftb_loss  # noqa: E402
from synflow.objective import (  # noqa: E402
    BackwardInputs,
    ForwardInputs,
    InputPrefetcher,
    backward_log_probs,
    forward_log_probs,
    learner_molecules,
    prepare_backward,
    prepare_forward,
)
from synflow.policy_runner import to_device  # noqa: E402
from synflow.runtime import configure_torch_threads, resolve_device  # noqa: E402
from synflow.schedules import divergence_at  # noqa: E402
from synflow.trainer import Trainer  # noqa: E402
from synflow.trajectory import Trajectory  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SHARED_BLOCKS = SHARED / "building_blocks" / "zincfrag_10k.smi.gz"
SHARED_TEMPLATES = SHARED / "templates" / "synflownet_hb.txt"


def run_config(args: argparse.Namespace, device: str) -> RunConfig:
    environment: dict[str, Any] = {
        "max_reactions": args.max_reactions,
        "backward_policy": args.backward,
        "blocks_per_template": args.blocks_per_template or None,
        "cache_dir": str(args.cache_dir),
    }
    if args.library == "shared":
        environment.update(building_blocks=str(SHARED_BLOCKS), templates=str(SHARED_TEMPLATES))
    return parse_run_config(
        {
            "reward": {"components": [{"type": "qed"}], "beta": 16.0},
            "loss": {"divergence": "reverse_kl"},
            "environment": environment,
            "model": {"hidden": args.hidden, "layers": args.layers, "block_hidden": args.block_hidden},
            "replay": {"fraction": 0.0},
            "training": {"steps": 1_000_000, "batch_size": 64, "seed": 0, "device": device, "lr": 1e-4},
        }
    )


def presample(trainer: Trainer, n: int) -> tuple[list[Trajectory], float]:
    t0 = time.perf_counter()
    pool: list[Trajectory] = []
    while len(pool) < n:
        pool += trainer.sample(min(64, n - len(pool)))
    return pool, time.perf_counter() - t0


_WORKER_FEATURIZER: MolFeaturizer | None = None


def pack_graphs(smiles: list[str]) -> GraphPack:
    """In a worker process: the graphs of ``smiles`` (a sampler keeps its featuriser's cache too)."""
    global _WORKER_FEATURIZER
    if _WORKER_FEATURIZER is None:
        _WORKER_FEATURIZER = MolFeaturizer()
    return _WORKER_FEATURIZER.pack(smiles)


def molecules(trainer: Trainer, batch: list[Trajectory]) -> list[str]:
    """Every molecule state the learner embeds for ``batch``."""
    return learner_molecules(batch, trainer.config.environment.backward_policy == "maximum_likelihood")


# -- one learner step, the parts apart ---------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare(trainer: Trainer, batch: list[Trajectory]) -> tuple[ForwardInputs, BackwardInputs | None]:
    forward = prepare_forward(trainer.runner, batch, trainer.model.start_slot)
    learned = trainer.config.environment.backward_policy == "maximum_likelihood"
    return forward, prepare_backward(trainer.runner, batch) if learned else None


def learner_loss(
    trainer: Trainer, batch: list[Trajectory], forward: ForwardInputs, backward: BackwardInputs | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Trainer.loss`` on prepared inputs, its figures left on the device: (loss, [loss, log Z, |Δ|])."""
    cfg, dev, model = trainer.config, trainer.device, trainer.model
    log_pf = forward_log_probs(trainer.runner, model, batch, forward)
    columns = [[t.log_reward for t in batch], [t.beta for t in batch], [t.uniform_log_pb for t in batch]]
    log_r, beta, log_pb = to_device([torch.tensor(c) for c in columns], dev)
    backward_loss = torch.zeros((), device=dev)
    if cfg.environment.backward_policy == "maximum_likelihood":
        learned = backward_log_probs(trainer.runner, model, batch, backward)
        log_pb = learned.detach()
        backward_loss = -learned.mean()
    log_z = model.log_z(beta) if cfg.loss.log_z == "learned" else None
    out = ftb_loss(log_pf, log_pb, log_r, divergence_at(cfg.loss, trainer.step), log_z=log_z)
    loss = out.loss + cfg.loss.backward_policy_weight * backward_loss
    figures = torch.stack(
        [out.loss.detach(), torch.as_tensor(out.log_z).to(dev), out.delta.detach().abs().mean()]
    )
    return loss, figures


def optimiser_step(trainer: Trainer) -> torch.Tensor | None:
    grad_norm = None
    if trainer.config.training.grad_clip is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(
            trainer.model.parameters(), trainer.config.training.grad_clip
        )
    trainer.optimizer.step()
    trainer.scheduler.step()
    trainer._update_ema()
    return grad_norm


def learner_step(
    trainer: Trainer, batch: list[Trajectory], forward: ForwardInputs, backward: BackwardInputs | None
) -> list[float]:
    """One gradient step on prepared inputs with one synchronisation, at the end (figures read once)."""
    trainer.model.train()
    loss, figures = learner_loss(trainer, batch, forward, backward)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = optimiser_step(trainer)
    if grad_norm is not None:
        figures = torch.cat([figures, grad_norm.reshape(1).to(figures.dtype)])
    trainer.trajectories_trained += len(batch)
    return figures.tolist()


# -- GPU utilisation ------------------------------------------------------------------------------------
def _utilisation(device: torch.device) -> float | None:
    try:
        return float(torch.cuda.utilization(device))
    except Exception:
        pass
    try:
        index = device.index or 0
        out = subprocess.run(
            ["nvidia-smi", "-i", str(index), "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return float(out.stdout.strip().splitlines()[0])
    except Exception:
        return None


class GpuMonitor:
    """Samples the GPU's utilisation (% of time a kernel ran, over the driver's sample period) in a
    thread while a loop runs; ``figures()`` gives the mean and the number of samples."""

    def __init__(self, device: torch.device, interval: float = 0.05) -> None:
        self.device, self.interval = device, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMonitor:
        if self.device.type == "cuda":
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            value = _utilisation(self.device)
            if value is None:
                return
            self.samples.append(value)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def figures(self) -> dict[str, Any]:
        if self.device.type != "cuda":
            return {}
        if not self.samples:
            return {"gpu_util_pct": None}
        return {"gpu_util_pct": round(float(np.mean(self.samples)), 1), "gpu_util_samples": len(self.samples)}


# -- the measurements --------------------------------------------------------------------------------
def timed(
    trainer: Trainer, batches: list[list[Trajectory]], mode: str, packer: ProcessPoolExecutor | None = None
) -> dict[str, Any]:
    dev = trainer.device
    runner = trainer.runner
    n = sum(len(b) for b in batches)
    losses: list[float] = []
    _sync(dev)
    with GpuMonitor(dev) as monitor:
        t0 = time.perf_counter()
        if mode in ("optimise_warm", "optimise_cold"):
            for batch in batches:
                if mode == "optimise_cold":
                    runner.featurizer.clear()
                losses.append(trainer.optimise(batch)["loss"])
        elif mode == "packed":
            assert packer is not None
            packed = packer.submit(pack_graphs, molecules(trainer, batches[0]))
            for k, batch in enumerate(batches):
                pack = packed.result()
                if k + 1 < len(batches):
                    packed = packer.submit(pack_graphs, molecules(trainer, batches[k + 1]))
                runner.featurizer.clear()
                runner.featurizer.preload(pack)
                losses.append(learner_step(trainer, batch, *prepare(trainer, batch))[0])
        else:
            learned = trainer.config.environment.backward_policy == "maximum_likelihood"
            with InputPrefetcher(runner, trainer.model.start_slot, backward=learned) as prefetch:
                runner.featurizer.clear()
                future = prefetch.submit(batches[0])
                for k, batch in enumerate(batches):
                    forward, backward = future.result()
                    if k + 1 < len(batches):
                        runner.featurizer.clear()
                        future = prefetch.submit(batches[k + 1])
                    losses.append(learner_step(trainer, batch, forward, backward)[0])
        _sync(dev)
        wall = time.perf_counter() - t0
    return {
        "trained_per_s": round(n / wall, 1),
        "step_ms": round(1000 * wall / len(batches), 2),
        "finite": all(math.isfinite(v) for v in losses),
        **monitor.figures(),
    }


def split(trainer: Trainer, batches: list[list[Trajectory]]) -> dict[str, float]:
    dev = trainer.device
    parts: dict[str, list[float]] = {
        k: [] for k in ("prepare_cold", "prepare_warm", "forward", "backward", "optimiser")
    }
    for batch in batches:
        trainer.runner.featurizer.clear()
        _sync(dev)
        t0 = time.perf_counter()
        prepare(trainer, batch)
        t1 = time.perf_counter()
        forward, backward = prepare(trainer, batch)
        t2 = time.perf_counter()
        trainer.model.train()
        loss, _ = learner_loss(trainer, batch, forward, backward)
        _sync(dev)
        t3 = time.perf_counter()
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _sync(dev)
        t4 = time.perf_counter()
        optimiser_step(trainer)
        _sync(dev)
        t5 = time.perf_counter()
        for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            parts[key].append(seconds)
    out = {k: round(1000 * float(np.median(v)), 2) for k, v in parts.items()}
    network = out["forward"] + out["backward"] + out["optimiser"]
    out["featurisation_share_cold"] = round(out["prepare_cold"] / (out["prepare_cold"] + network), 3)
    out["inputs_share_warm"] = round(out["prepare_warm"] / (out["prepare_warm"] + network), 3)
    return out


def profile_cold_step(trainer: Trainer, batch: list[Trajectory], top: int = 25) -> str:
    trainer.runner.featurizer.clear()
    profiler = cProfile.Profile()
    profiler.enable()
    trainer.optimise(batch)
    _sync(trainer.device)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def loss_check(trainer: Trainer, batch: list[Trajectory]) -> float:
    """|loss on prepared inputs − Trainer.loss| on one batch (0 on the CPU: the same operations)."""
    trainer.model.train()
    expected = trainer.loss(batch)[1]["loss"]
    loss, _ = learner_loss(trainer, batch, *prepare(trainer, batch))
    trainer.optimizer.zero_grad(set_to_none=True)
    return abs(float(loss.detach()) - expected)


def bench_device(
    args: argparse.Namespace,
    device: torch.device,
    pool: list[Trajectory],
    sampler: Trainer,
    report: dict[str, Any],
    deadline: float,
    packer: ProcessPoolExecutor,
) -> None:
    trainer = Trainer(run_config(args, str(device)), chemistry=sampler.chem, reward=sampler.reward)
    entry: dict[str, Any] = {"device": str(trainer.device), "batches": {}}
    if trainer.device.type == "cuda":
        entry["name"] = torch.cuda.get_device_name(trainer.device)
    report["devices"][str(trainer.device)] = entry
    rng = np.random.default_rng(0)
    sizes = args.batches if trainer.device.type == "cuda" else args.cpu_batches
    for size in sizes:
        if time.monotonic() > deadline:
            entry["batches"][str(size)] = {"skipped": "time limit"}
            continue

        def draw(k: int, size: int = size) -> list[list[Trajectory]]:
            return [
                [pool[i] for i in rng.choice(len(pool), size, replace=size > len(pool))] for _ in range(k)
            ]

        row: dict[str, Any] = {}
        entry["batches"][str(size)] = row
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)
        for batch in draw(args.warmup):
            trainer.optimise(batch)
        row["loss_diff_prepared_vs_trainer"] = loss_check(trainer, draw(1)[0])
        for mode in ("optimise_warm", "optimise_cold", "prefetched", "packed"):
            if time.monotonic() > deadline:
                row[mode] = {"skipped": "time limit"}
                continue
            batches = draw(args.steps)
            if mode == "optimise_warm":
                for batch in batches:  # the graphs cached, as a serial learner has them
                    prepare(trainer, batch)
            row[mode] = timed(trainer, batches, mode, packer)
        if time.monotonic() < deadline:
            row["split_ms"] = split(trainer, draw(max(3, args.steps // 2)))
        if trainer.device.type == "cuda":
            row["peak_memory_mib"] = round(torch.cuda.max_memory_allocated(trainer.device) / 2**20, 1)
        if args.profile and time.monotonic() < deadline:
            print(f"--- cProfile of one optimise_cold step, {trainer.device}, batch {size} ---", flush=True)
            print(profile_cold_step(trainer, draw(1)[0]), flush=True)
        print(json.dumps({str(trainer.device): {str(size): row}}), flush=True)
        write(report, args.out)


def write(report: dict[str, Any], out: Path | None) -> None:
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", nargs="+", default=["auto"], help="auto, cpu, cuda, cuda:1 …")
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[64, 256, 1024], help="batch sizes on a GPU"
    )
    parser.add_argument("--cpu-batches", type=int, nargs="+", default=[64], help="batch sizes on the CPU")
    parser.add_argument(
        "--pool", type=int, default=1024, help="trajectories sampled once, batches drawn from them"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--library", choices=["bundled", "shared"], default="bundled")
    parser.add_argument("--max-reactions", type=int, default=3)
    parser.add_argument(
        "--backward",
        choices=["route", "uniform", "maximum_likelihood"],
        default="route",
        help="route (default) samples the pool fastest; the learner's forward pass is the same for uniform",
    )
    parser.add_argument(
        "--blocks-per-template", type=int, default=64, help="0: every compatible block (exact)"
    )
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--block-hidden", type=int, default=256)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: SYNFLOW_TORCH_THREADS or 1)"
    )
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds; later parts are skipped")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one cold optimise step")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.library == "shared" and not SHARED_BLOCKS.exists():
        parser.error(f"--library shared needs {SHARED_BLOCKS}")
    started = time.monotonic()
    deadline = started + args.time_limit
    devices = [resolve_device(name) for name in args.devices]
    if not any(d.type != "cuda" or torch.cuda.is_available() for d in devices):
        print(json.dumps({"skipped": f"no CUDA device for --devices {' '.join(args.devices)}"}))
        return
    threads = configure_torch_threads(args.threads)
    report: dict[str, Any] = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": f"{platform.machine()} cpus={os.cpu_count()} torch={torch.__version__} threads={threads}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": round(os.getloadavg()[0], 2),
        "devices": {},
    }
    t0 = time.perf_counter()
    sampler = Trainer(run_config(args, "cpu"))
    report["setup_s"] = round(time.perf_counter() - t0, 1)
    pool, seconds = presample(sampler, args.pool)
    states = {s.state.smiles for t in pool for s in t.steps if s.state.smiles}
    report["presample"] = {
        "trajectories": len(pool),
        "seconds": round(seconds, 1),
        "sampled_per_s_cpu": round(len(pool) / seconds, 1),
        "mean_steps": round(float(np.mean([len(t.steps) for t in pool])), 2),
        "valid_fraction": round(sum(t.valid for t in pool) / len(pool), 3),
        "distinct_molecule_states": len(states),
    }
    print(json.dumps({"presample": report["presample"]}), flush=True)
    write(report, args.out)
    # the "packed" mode's featuriser process, started (spawned: CUDA does not survive a fork) once
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as packer:
        packer.submit(pack_graphs, ["C"]).result()
        for name, device in zip(args.devices, devices, strict=True):
            if device.type == "cuda" and not torch.cuda.is_available():
                report["devices"][name] = {"skipped": "no CUDA device"}
                continue
            if str(device) in report["devices"]:
                continue
            bench_device(args, device, pool, sampler, report, deadline, packer)
    report["load_after"] = round(os.getloadavg()[0], 2)
    report["wall_s"] = round(time.monotonic() - started, 1)
    write(report, args.out)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
