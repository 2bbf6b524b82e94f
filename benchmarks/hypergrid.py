"""The hypergrid experiment of the f-TB paper, with torchgfn's TB side by side.

Every run trains a GFlowNet on a hypergrid for a fixed budget of sampled trajectories and, at regular
trajectory counts, evaluates the model's exact terminal distribution by dynamic programming
(``synflow.hypergrid.terminal_distribution``): exact L1 and JSD to the target and the modes the model
covers, plus the modes reached so far by training samples. torchgfn's policy is evaluated with the
same dynamic programme, so the two are compared at equal trajectory counts on equal terms.

    python benchmarks/hypergrid.py --quick          # < 10 min on 2 cores
    python benchmarks/hypergrid.py                  # the full experiment (about 90 min on 2 cores)

Writes ``benchmarks/results/hypergrid[-quick].json`` and ``.png``. Each run is its own process (one
torch thread, two processes at most) so runs never share a core and torchgfn's import side effects
(``gfn.gym`` sets the global multiprocessing start method) stay in its own process.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# The f-TB members compared; "alpha_anneal" anneals α linearly from 0.75 to 1.2 over the run.
FAMILY: dict[str, dict[str, Any]] = {
    "forward_kl": {"divergence": "forward_kl"},
    "hellinger": {"divergence": "hellinger"},
    "reverse_kl": {"divergence": "reverse_kl"},
    "pearson": {"divergence": "pearson"},
    "alpha_anneal": {"divergence": "alpha", "alpha": 0.75, "alpha_end": 1.2, "alpha_schedule": "linear"},
    "neyman": {"divergence": "neyman"},
    "js": {"divergence": "js"},
    "tv": {"divergence": "tv"},
}
POLICY_MODES: dict[str, dict[str, Any]] = {
    "on": {},
    # ε on every action of every trajectory + uniform replay, unweighted (the first off-policy runs)
    "off": {"epsilon": 0.1, "replay_capacity": 10_000, "replay_batch": 16},
    # ε on a quarter of the trajectories (a trajectory-level mixture, so p/q ≤ 4/3) + uniform replay,
    # each trajectory weighted by p_θ(τ)/q(τ), truncated at 10 and normalised over the batch
    "off-weighted": {
        "epsilon": 0.1,
        "explore_fraction": 0.25,
        "replay_capacity": 10_000,
        "replay_batch": 16,
        "importance": "truncated",
    },
    # uniform replay alone, weighted the same way (no ε-exploration)
    "off-replay-weighted": {"replay_capacity": 10_000, "replay_batch": 16, "importance": "truncated"},
}


@dataclass(frozen=True)
class Suite:
    """One grid and budget: the family on and off policy, and torchgfn's TB, over seeds."""

    name: str
    dim: int
    side: int
    r0: float
    budget: int
    seeds: tuple[int, ...]
    methods: tuple[str, ...] = tuple(FAMILY)
    modes: tuple[str, ...] = tuple(POLICY_MODES)
    torchgfn_seeds: tuple[int, ...] = (0,)
    evaluations: int = 20
    batch_size: int = 16


@dataclass(frozen=True)
class Job:
    suite: Suite
    method: str  # a FAMILY key, or "torchgfn_tb"
    policy_mode: str
    seed: int
    common: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.suite.name}/{self.method}/{self.policy_mode}/seed{self.seed}"


def suites(quick: bool) -> list[Suite]:
    """The runs, most important first (the pool takes them in this order)."""
    if quick:
        return [
            Suite("2d-h32-quick", 2, 32, 1e-3, budget=48_000, seeds=(0,), evaluations=8),
            Suite(
                "4d-h8-quick", 4, 8, 0.1, budget=16_000, seeds=(0,), methods=("forward_kl",), evaluations=4
            ),
        ]
    # Sized for a shared 2-core machine (see BENCHMARKS.md), most needed first, so whatever a time limit
    # cuts short is the least needed: TB against torchgfn's TB on 4-D (same loss, so equal L1 is the
    # fair test of speed), then three seeds of the 2-D family on-policy, torchgfn on 2-D H=64 at 400k,
    # the 400k forward-KL seeds, and the off-policy seeds. Runs already in the JSON are skipped.
    on, off = ("on",), ("off",)
    h64 = {"dim": 2, "side": 64, "r0": 1e-3}
    h128 = {"dim": 2, "side": 128, "r0": 1e-3}
    later = [  # single-method on-policy runs: (suite, grid, budget, seeds, method)
        ("2d-h64-400k", h64, 400_000, (0,), "hellinger"),
        ("2d-h128", h128, 200_000, (0, 1), "forward_kl"),
        ("2d-h128", h128, 200_000, (0,), "reverse_kl"),
        ("2d-h128-400k", h128, 400_000, (0, 1), "forward_kl"),
    ]
    seeds = (0, 1, 2)
    return [
        # the on- vs off-policy table: every member, 3 seeds, the same 100k trajectories
        Suite(
            "4d-h8-100k",
            4,
            8,
            0.1,
            budget=100_000,
            seeds=seeds,
            modes=("on", "off-weighted", "off-replay-weighted"),
            torchgfn_seeds=(),
            evaluations=10,
        ),
        Suite(
            "2d-h64",
            **h64,
            budget=100_000,
            seeds=seeds,
            modes=("off-weighted", "off-replay-weighted"),
            torchgfn_seeds=(),
        ),
        Suite(
            "4d-h8",
            4,
            8,
            0.1,
            budget=200_000,
            seeds=seeds,
            methods=("reverse_kl", "forward_kl"),
            modes=on,
            torchgfn_seeds=seeds,
        ),
        Suite("2d-h64", **h64, budget=100_000, seeds=seeds, modes=on, torchgfn_seeds=()),
        Suite("2d-h64-400k", **h64, budget=400_000, seeds=seeds, methods=("forward_kl",), modes=on),
        Suite("2d-h64", **h64, budget=100_000, seeds=seeds, modes=off, torchgfn_seeds=()),
        *(
            Suite(name, **grid, budget=budget, seeds=seeds, methods=(method,), modes=on, torchgfn_seeds=())
            for name, grid, budget, seeds, method in later
        ),
    ]


def jobs(selected: list[Suite]) -> Iterator[Job]:
    for suite in selected:  # seed by seed, the family before torchgfn's TB of the same seed
        for seed in sorted({*suite.seeds, *suite.torchgfn_seeds}):
            if seed in suite.seeds:
                for mode in suite.modes:
                    for method in suite.methods:
                        yield Job(suite, method, mode, seed)
            if seed in suite.torchgfn_seeds:
                yield Job(suite, "torchgfn_tb", "on", seed)


# ---------------------------------------------------------------------------------------------
# One run (in its own process).
# ---------------------------------------------------------------------------------------------


def run_job(job: Job) -> dict[str, Any]:
    from synflow.runtime import configure_torch_threads

    configure_torch_threads(1)
    runner = run_torchgfn if job.method == "torchgfn_tb" else run_synflow
    started = time.perf_counter()
    curve = runner(job)
    return {
        "key": job.key,
        "suite": asdict(job.suite),
        "method": job.method,
        "policy_mode": job.policy_mode,
        "seed": job.seed,
        "curve": curve,
        "wall_s": time.perf_counter() - started,
    }


def _checkpoints(suite: Suite) -> list[int]:
    return [round(suite.budget * (i + 1) / suite.evaluations) for i in range(suite.evaluations)]


def _point(trajectories: int, metrics: Any, modes_sampled: int, cpu: float, wall: float) -> dict[str, Any]:
    return {
        "trajectories": trajectories,
        "l1": metrics.l1,
        "jsd": metrics.jsd,
        "modes_exact": metrics.modes_found,
        "mode_mass": list(metrics.mode_mass),
        "modes_sampled": modes_sampled,
        "cpu_s": cpu,
        "wall_s": wall,
    }


def _progress(job: Job, point: dict[str, Any]) -> None:
    print(
        f"  {job.key} {point['trajectories']:>7} L1 {point['l1']:.3f} modes {point['modes_exact']}"
        f" ({point['modes_sampled']} sampled) cpu {point['cpu_s']:.0f} s",
        flush=True,
    )


def run_synflow(job: Job) -> list[dict[str, Any]]:
    from synflow.hypergrid import HypergridConfig, HypergridTrainer

    suite = job.suite
    cfg = HypergridConfig(
        dim=suite.dim,
        side=suite.side,
        r0=suite.r0,
        batch_size=suite.batch_size,
        steps=math.ceil(suite.budget / suite.batch_size),
        seed=job.seed,
        **FAMILY[job.method],
        **POLICY_MODES[job.policy_mode],
    )
    trainer = HypergridTrainer(cfg)
    curve: list[dict[str, Any]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for target in _checkpoints(suite):
        ess: list[float] = []
        importance_ess: list[float] = []
        while trainer.trajectories < target:
            res = trainer.step()
            ess.append(res.ess)
            importance_ess.append(res.importance_ess)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        point = _point(trainer.trajectories, trainer.evaluate(), res.modes_sampled, cpu, wall)
        point["mean_length"] = res.mean_length
        # medians over the steps since the last evaluation: ESS of e^{−Δ} and of the importance weights
        point["ess_median"] = statistics.median(ess)
        point["importance_ess_median"] = statistics.median(importance_ess)
        curve.append(point)
        _progress(job, point)
        cpu0 += time.process_time() - cpu0 - cpu  # evaluation time is not training time
        wall0 += time.perf_counter() - wall0 - wall
    return curve


class TorchgfnTB:
    """torchgfn's TB as in its ``train_hypergrid_simple.py``: MLP 2×256 on k-hot states, uniform P_B,
    Adam 1e-3 (policy) / 1e-1 (log Z), on-policy with saved log-probs, no exploration, no clipping."""

    def __init__(self, dim: int, side: int, r0: float, seed: int, batch_size: int) -> None:
        import torch

        start_method = multiprocessing.get_start_method(allow_none=True)
        from gfn.estimators import DiscretePolicyEstimator
        from gfn.gflownet import TBGFlowNet
        from gfn.gym import HyperGrid
        from gfn.preprocessors import KHotPreprocessor
        from gfn.samplers import Sampler
        from gfn.utils.modules import MLP, DiscreteUniform

        multiprocessing.set_start_method(start_method, force=True)  # undo gfn.gym's global "fork"
        from synflow.hypergrid import Hypergrid

        torch.manual_seed(seed)
        kwargs = {"R0": r0, "R1": 0.5, "R2": 2.0}
        self.env = HyperGrid(ndim=dim, height=side, reward_fn_kwargs=kwargs, validate_modes=False)
        pre = KHotPreprocessor(height=side, ndim=dim)
        self.pf_module = MLP(pre.output_dim, self.env.n_actions)
        pf = DiscretePolicyEstimator(self.pf_module, self.env.n_actions, preprocessor=pre)
        pb_module = DiscreteUniform(output_dim=self.env.n_actions - 1)
        pb = DiscretePolicyEstimator(pb_module, self.env.n_actions, preprocessor=pre, is_backward=True)
        self.gflownet = TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)
        self.sampler = Sampler(estimator=pf)
        self.optimizer = torch.optim.Adam(self.gflownet.pf_pb_parameters(), lr=1e-3)
        self.optimizer.add_param_group({"params": self.gflownet.logz_parameters(), "lr": 1e-1})
        self.batch_size = batch_size
        self.grid = Hypergrid(dim, side, r0)
        _check_same_reward(self.env, self.grid)

    def step(self) -> Any:
        """One training step; returns the terminal states [B, D]."""
        trajectories = self.sampler.sample_trajectories(self.env, n=self.batch_size, save_logprobs=True)
        self.optimizer.zero_grad()
        loss = self.gflownet.loss(self.env, trajectories, recalculate_all_logprobs=False)
        loss.backward()
        self.optimizer.step()
        return trajectories.terminating_states.tensor

    def stop_logit_bias(self) -> Any:
        return self.pf_module.last_layer.bias[self.grid.stop]

    def metrics(self) -> Any:
        return _torchgfn_metrics(self.grid, self.pf_module)


def run_torchgfn(job: Job) -> list[dict[str, Any]]:
    import torch

    suite = job.suite
    tb = TorchgfnTB(suite.dim, suite.side, suite.r0, job.seed, suite.batch_size)
    seen = torch.zeros(tb.grid.n_modes, dtype=torch.bool)
    curve: list[dict[str, Any]] = []
    done = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for target in _checkpoints(suite):
        while done < target:
            ids = tb.grid.mode_id(tb.step())
            seen[ids[ids >= 0]] = True
            done += suite.batch_size
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        curve.append(_point(done, tb.metrics(), int(seen.sum()), cpu, wall))
        _progress(job, curve[-1])
        cpu0 += time.process_time() - cpu0 - cpu
        wall0 += time.perf_counter() - wall0 - wall
    return curve


def _khot(grid: Any, states: Any) -> Any:
    import torch

    return torch.nn.functional.one_hot(states, grid.side).reshape(len(states), -1).float()


def _check_same_reward(env: Any, grid: Any) -> None:
    import torch

    states = grid.all_states()
    theirs = env.reward_fn(states).to(torch.float64)
    if not torch.allclose(theirs, grid.reward(states), rtol=1e-6):
        raise RuntimeError("torchgfn's hypergrid reward differs from synflow's")


def _torchgfn_metrics(grid: Any, module: Any) -> Any:
    """torchgfn's forward policy on every state, through synflow's exact dynamic programme."""
    import torch

    from synflow.hypergrid import exact_metrics, forward_log_probs, terminal_distribution

    states = grid.all_states()
    with torch.no_grad():
        logits = module(_khot(grid, states)).to(torch.float64)
    return exact_metrics(grid, terminal_distribution(grid, forward_log_probs(logits, states, grid.side)))


# ---------------------------------------------------------------------------------------------
# Speed at equal path lengths (--speed).
# ---------------------------------------------------------------------------------------------

# (label, D, H, stop-logit bias): the bias sets the mean trajectory length for both frameworks.
SPEED_CASES: list[tuple[str, int, int, float]] = [
    ("2-D H=64, initial policy", 2, 64, 0.0),
    ("2-D H=64, stop bias -3", 2, 64, -3.0),
    ("2-D H=64, stop bias -6", 2, 64, -6.0),
    ("4-D H=8, initial policy", 4, 8, 0.0),
]


def speed_case(args: tuple[str, str, int, int, float]) -> dict[str, Any]:
    """Training steps of batch 16, MLP 2×256, TB (synflow: reverse_kl with learned log Z, the same
    objective up to a factor 2), on-policy, timed after a warm-up; per CPU-second and wall-second."""
    import torch

    from synflow.hypergrid import HypergridConfig, HypergridTrainer
    from synflow.runtime import configure_torch_threads

    framework, label, dim, side, bias = args
    configure_torch_threads(1)
    if framework == "synflow":
        trainer = HypergridTrainer(
            HypergridConfig(dim=dim, side=side, divergence="reverse_kl", batch_size=16)
        )
        stop_bias = trainer.policy.head.bias[dim]

        def step() -> float:
            return trainer.step().mean_length

    else:
        tb = TorchgfnTB(dim, side, 1e-3, seed=0, batch_size=16)
        stop_bias = tb.stop_logit_bias()

        def step() -> float:
            return float(tb.step().sum(-1).float().mean()) + 1

    with torch.no_grad():
        stop_bias += bias
    for _ in range(5):
        step()
    n, lengths = 40, []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        lengths.append(step())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "framework": framework,
        "case": label,
        "mean_length": _mean(lengths),
        "traj_per_cpu_s": 16 * n / cpu,
        "traj_per_wall_s": 16 * n / wall,
    }


def run_speed(out: Path, repeats: int = 2) -> dict[str, Any]:
    """Each case alternates synflow and torchgfn, one process at a time, ``repeats`` times."""
    todo = [
        (framework, *case)
        for case in SPEED_CASES
        for _ in range(repeats)
        for framework in ("synflow", "torchgfn")
    ]
    report = _header()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for result in pool.imap(speed_case, todo):
            report["runs"].append(result)
            print(result, flush=True)
    _save(out, report)
    return report


def speed_rows(report: dict[str, Any]) -> list[str]:
    rows = [
        "| case | mean length synflow / torchgfn | traj/CPU-s synflow | traj/CPU-s torchgfn | ratio |",
        "|---|---|---|---|---|",
    ]
    for label, *_ in SPEED_CASES:
        ours = [r for r in report["runs"] if r["case"] == label and r["framework"] == "synflow"]
        theirs = [r for r in report["runs"] if r["case"] == label and r["framework"] == "torchgfn"]
        if not ours or not theirs:
            continue
        a = max(r["traj_per_cpu_s"] for r in ours)
        b = max(r["traj_per_cpu_s"] for r in theirs)
        la, lb = _mean([r["mean_length"] for r in ours]), _mean([r["mean_length"] for r in theirs])
        rows.append(f"| {label} | {la:.1f} / {lb:.1f} | {a:,.0f} | {b:,.0f} | {a / b:.1f}× |")
    return rows


# ---------------------------------------------------------------------------------------------
# Orchestration, output, plot.
# ---------------------------------------------------------------------------------------------


def run_all(selected: list[Suite], out: Path, processes: int) -> dict[str, Any]:
    report = _load(out) or _header()
    done = {r["key"] for r in report["runs"]}
    todo = [j for j in jobs(selected) if j.key not in done]
    print(f"{len(todo)} runs to do ({len(done)} already in {out.name}), {processes} processes")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes, maxtasksperchild=1) as pool:
        for result in pool.imap_unordered(run_job, todo):
            report["runs"].append(result)
            _save(out, report)
            print(_one_line(result), flush=True)
    return report


def _header() -> dict[str, Any]:
    import torch

    try:
        from importlib.metadata import version

        gfn_version = version("torchgfn")
    except Exception:  # torchgfn is the optional "bench" extra
        gfn_version = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} CPU cores, {platform.processor()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchgfn": gfn_version,
        "torch_threads_per_process": 1,
        "family": FAMILY,
        "policy_modes": POLICY_MODES,
        "runs": [],
    }


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _save(path: Path, report: dict[str, Any]) -> None:
    """Write ``report``, keeping runs another process added to the file meanwhile (two invocations
    with different ``--only``/``--modes`` may share one JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    on_disk = _load(path)
    if on_disk is not None:
        mine = {r["key"] for r in report["runs"]}
        report["runs"].extend(r for r in on_disk["runs"] if r["key"] not in mine)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(path)


def _one_line(result: dict[str, Any]) -> str:
    last = result["curve"][-1]
    rate = last["trajectories"] / last["cpu_s"]
    return (
        f"{result['key']:<40} L1 {last['l1']:.3f}  JSD {last['jsd']:.4f}  modes exact {last['modes_exact']}"
        f"  sampled {last['modes_sampled']}  {rate:,.0f} traj/CPU-s  ({result['wall_s']:.0f} s wall)"
    )


def summarise(report: dict[str, Any]) -> list[str]:
    """Markdown rows: per suite/method/mode, mean over seeds at ¼, ½ and all of the budget."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in report["runs"]:
        groups.setdefault((run["suite"]["name"], run["method"], run["policy_mode"]), []).append(run)
    rows = [
        "| grid | method | policy | seeds | exact L1 at ¼ / ½ / 1 budget | modes exact (sampled) at end"
        " | traj/CPU-s |",
        "|---|---|---|---|---|---|---|",
    ]
    for (suite, method, mode), runs in sorted(groups.items()):
        n = len(runs[0]["curve"])
        picks = [max(0, n // 4 - 1), max(0, n // 2 - 1), n - 1]
        l1 = " / ".join(f"{_mean([r['curve'][i]['l1'] for r in runs]):.3f}" for i in picks)
        exact = "/".join(str(r["curve"][-1]["modes_exact"]) for r in runs)
        sampled = "/".join(str(r["curve"][-1]["modes_sampled"]) for r in runs)
        rate = _mean([r["curve"][-1]["trajectories"] / r["curve"][-1]["cpu_s"] for r in runs])
        rows.append(
            f"| {suite} | {method} | {mode} | {len(runs)} | {l1} | {exact} ({sampled}) | {rate:,.0f} |"
        )
    return rows


def on_off_rows(report: dict[str, Any], suite: str, off: str = "off-weighted") -> list[str]:
    """Markdown rows: per member, final exact L1 on- and off-policy (per seed and mean), their ratio,
    the exact modes per seed and the median ESS of the off-policy importance weights."""
    rows = [
        f"| member | on-policy L1 (seeds) | {off} L1 (seeds) | off / on | modes exact on → off |"
        " importance-weight ESS (median) |",
        "|---|---|---|---|---|---|",
    ]
    for method in FAMILY:
        runs = {
            mode: sorted(
                (
                    r
                    for r in report["runs"]
                    if r["suite"]["name"] == suite and r["method"] == method and r["policy_mode"] == mode
                ),
                key=lambda r: r["seed"],
            )
            for mode in ("on", off)
        }
        if not runs["on"] or not runs[off]:
            continue
        l1 = {mode: [r["curve"][-1]["l1"] for r in rs] for mode, rs in runs.items()}
        modes = {mode: "/".join(str(r["curve"][-1]["modes_exact"]) for r in rs) for mode, rs in runs.items()}
        ess = _mean([r["curve"][-1].get("importance_ess_median", float("nan")) for r in runs[off]])
        cell = {mode: f"{_mean(v):.3f} ({', '.join(f'{x:.3f}' for x in v)})" for mode, v in l1.items()}
        rows.append(
            f"| {method} | {cell['on']} | {cell[off]} | {_mean(l1[off]) / _mean(l1['on']):.2f} | "
            f"{modes['on']} → {modes[off]} | {ess:.2f} |"
        )
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    names = list(dict.fromkeys(r["suite"]["name"] for r in report["runs"]))
    # one row per (grid, policy mode) that has runs: exact JSD on the left, modes found on the right
    panels = [
        (name, mode)
        for name in names
        for mode in POLICY_MODES
        if any(
            r["suite"]["name"] == name and r["policy_mode"] == mode and r["method"] != "torchgfn_tb"
            for r in report["runs"]
        )
    ]
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.1 * len(panels)), squeeze=False)
    colours = dict(zip([*FAMILY, "torchgfn_tb"], plt.get_cmap("tab10").colors, strict=False))
    thousands = FuncFormatter(lambda v, _: f"{v / 1000:.0f}k")
    for row, (name, mode) in enumerate(panels):
        _panel(axes[row, 0], axes[row, 1], report, name, mode, colours)
        axes[row, 0].set_title(f"{name}, {mode}-policy: exact JSD to the target", fontsize=10)
        axes[row, 1].set_title(f"{name}, {mode}-policy: modes found by samples", fontsize=10)
        axes[row, 0].legend(fontsize=7, title="method (seeds)", title_fontsize=7)
        for ax in axes[row]:
            ax.xaxis.set_major_formatter(thousands)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _panel(ax_jsd: Any, ax_modes: Any, report: dict[str, Any], suite: str, mode: str, colours: dict) -> None:
    by_method: dict[str, list[dict[str, Any]]] = {}
    for run in report["runs"]:
        if run["suite"]["name"] != suite:
            continue
        if run["policy_mode"] == mode:  # torchgfn's TB runs on-policy
            by_method.setdefault(run["method"], []).append(run)
    for method, runs in by_method.items():
        x = [p["trajectories"] for p in runs[0]["curve"]]
        style = "--" if method == "torchgfn_tb" else "-"
        for ax, key in ((ax_jsd, "jsd"), (ax_modes, "modes_sampled")):
            ys = [[p[key] for p in r["curve"]] for r in runs]
            mean = [_mean(list(col)) for col in zip(*ys, strict=True)]
            ax.plot(x, mean, style, color=colours[method], label=f"{method} ({len(runs)})", lw=1.4)
            if len(runs) > 1:
                lo = [min(col) for col in zip(*ys, strict=True)]
                hi = [max(col) for col in zip(*ys, strict=True)]
                ax.fill_between(x, lo, hi, color=colours[method], alpha=0.15)
    ax_jsd.set_ylabel("exact JSD (nats)")
    ax_jsd.set_yscale("log")
    ax_modes.set_ylabel("modes found (samples)")
    ax_modes.set_xlabel("trajectories")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small grids, one seed (< 10 min on 2 cores)")
    parser.add_argument("--processes", type=int, default=2, help="runs in parallel, one core each")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (resumes runs already in it)")
    parser.add_argument(
        "--only", nargs="+", default=None, help="run only suites whose name contains one of these"
    )
    parser.add_argument("--modes", nargs="+", default=None, help="run only these policy modes (on, off, …)")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the JSON")
    parser.add_argument(
        "--speed", action="store_true", help="only the speed comparison at equal path lengths"
    )
    args = parser.parse_args()
    if args.speed:
        speed = run_speed(args.out or RESULTS / "hypergrid-speed.json")
        print("\n".join(speed_rows(speed)))
        return
    out = args.out or RESULTS / ("hypergrid-quick.json" if args.quick else "hypergrid.json")
    selected = [s for s in suites(args.quick) if args.only is None or any(o in s.name for o in args.only)]
    if args.modes:
        selected = [replace(s, modes=tuple(m for m in s.modes if m in args.modes)) for s in selected]
    report = _load(out) if args.plot_only else run_all(selected, out, args.processes)
    if report is None:
        raise SystemExit(f"nothing to plot: {out} does not exist")
    plot(report, out.with_suffix(".png"))
    print("\n".join(summarise(report)))
    for suite in ("4d-h8-100k", "2d-h64"):
        for off in ("off-weighted", "off-replay-weighted"):
            print(f"\n{suite}, on- against {off} (same trajectories drawn):")
            print("\n".join(on_off_rows(report, suite, off)))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
