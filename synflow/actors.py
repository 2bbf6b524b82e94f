"""Actor–learner sampling: sampler processes draw trajectories for one learner (``training.samplers``).

Each sampler (``SamplerWorker``) builds the run's chemistry and policy network from its RunConfig,
loads the learner's latest sampling weights when a request carries them, and draws a batch of
trajectories: the forward walk, the block choices and the retro-analysis the backward policy needs,
i.e. all the chemistry. The learner scores the molecules (the reward cache and the oracle budget stay
in one place), trains on them and sends the next request with newer weights, so sampling overlaps
training. A batch drawn with weights ``k`` learner steps old is off-policy data, which f-TB trains on
with the same minimiser; the learner drops batches older than ``training.max_staleness``.

Two executors run the same worker: ``LocalSamplerPool`` (spawned processes on this machine) and
``RaySamplerPool`` (Ray actors, on a cluster when ``training.ray_address`` is set). Both replace a
sampler that dies and re-issue the request it held, so a lost sampler loses no scored molecule.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.featurize import GraphPack, MolFeaturizer
from reactions.index import CompatibilityIndex
from reactions.library import BuildingBlockLibrary
from reactions.similarity import ecfp4_generator, packed_ecfp4_bytes
from reactions.smiles import inchikey
from reactions.templates import ReactionTemplate
from synflow.assembly import build_policy
from synflow.chemistry import SynthesisChemistry
from synflow.config import RunConfig, parse_run_config
from synflow.constraints import RouteConstraints
from synflow.env import SynthesisEnv
from synflow.objective import learner_molecules
from synflow.policy_runner import PolicyRunner
from synflow.preferences import PreferenceSampler
from synflow.rewards import build_reward
from synflow.runtime import configure_torch_threads
from synflow.sampler import SamplerSettings, TrajectorySampler
from synflow.schedules import beta_range, sample_betas
from synflow.trajectory import Trajectory, score_trajectories

__all__ = [
    "ChemistrySpec",
    "DrawRequest",
    "DrawResult",
    "LocalSamplerPool",
    "RaySamplerPool",
    "SamplerLost",
    "SamplerPool",
    "SamplerWorker",
    "open_sampler_pool",
    "scores_in_samplers",
    "seeded_streams",
]

Weights = Mapping[str, Any]  # name → tensor (or array, through a pipe)


@dataclass(frozen=True)
class DrawRequest:
    """Draw ``n`` trajectories with weights of learner step ``version`` (``weights`` None: the ones
    the sampler already holds, which are that version). ``seed`` seeds the draw's random stream."""

    n: int
    version: int
    seed: tuple[int, ...]
    settings: SamplerSettings
    weights: Weights | None = None


@dataclass
class DrawResult:
    worker: int
    version: int
    trajectories: list[Trajectory]
    seconds: float
    timers: dict[str, float] = field(default_factory=dict)
    unverified: int = 0  # products the sampler's retro-analysis could not give back (cumulative)
    # per valid molecule, what the store files it under: (InChIKey, "" when RDKit made none; packed
    # ECFP4), computed here so that the learner does not (4 ms a molecule on a busy core)
    identities: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    # the graphs of every state the learner's loss embeds, featurised here (the sampler has most of
    # them cached from the walk); the learner preloads them instead of running RDKit again
    graphs: GraphPack | None = None
    # scored here (``scores_in_samplers``): this sampler's oracle calls so far; None: the learner scores
    oracle_calls: int | None = None


class SamplerLost(RuntimeError):
    """A sampler died (killed, out of memory, node lost) while it held a request."""

    def __init__(self, worker: int, reason: str) -> None:
        super().__init__(f"sampler {worker} was lost: {reason}")
        self.worker = worker
        self.reason = reason


@dataclass(frozen=True)
class ChemistrySpec:
    """What a sampler rebuilds the learner's ``SynthesisChemistry`` from (picklable: the library,
    templates and compatibility index travel with it, so no node needs the run's files)."""

    library: BuildingBlockLibrary
    templates: tuple[ReactionTemplate, ...]
    index: CompatibilityIndex
    max_reactions: int
    min_reactions: int
    store_dir: Path | None = None  # the retro-analysis store (a node without it runs without one)
    constraints: RouteConstraints | None = None  # start blocks and scaffold: the samplers' masks too

    @classmethod
    def of(cls, chem: SynthesisChemistry) -> ChemistrySpec:
        return cls(
            chem.library,
            tuple(chem.templates),
            chem.index,
            chem.max_reactions,
            chem.min_reactions,
            chem.store_dir,
            chem.constraints,
        )

    def build(self) -> SynthesisChemistry:
        return SynthesisChemistry(
            self.library,
            self.templates,
            self.index,
            self.max_reactions,
            self.min_reactions,
            store_dir=self.store_dir,
            constraints=self.constraints,
        )


class SamplerWorker:
    """One sampler: the run's chemistry, environment and policy network, on the CPU, one torch thread
    (the chemistry is the work; every process keeps its own caches)."""

    def __init__(self, config: Mapping[str, Any], chemistry: ChemistrySpec, worker: int) -> None:
        configure_torch_threads(1)
        run = parse_run_config(dict(config))
        self.worker = worker
        self.chem = chemistry.build()
        self.env = SynthesisEnv(self.chem, verify_retro=run.environment.backward_policy != "route")
        self.model, features = build_policy(run, self.chem)
        self.model.eval()
        device = torch.device("cpu")
        runner = PolicyRunner(MolFeaturizer(), features, device)
        self.sampler = TrajectorySampler(self.env, runner, np.random.default_rng(0))
        self.beta_range = beta_range(run.conditioning, run.reward.beta)
        # preference-conditioned runs: each trajectory's w drawn here, like its β
        self.preference_components = run.preference_components
        self.preferences = None
        if run.conditioning.preferences is not None and self.preference_components is not None:
            alpha = run.conditioning.preferences.dirichlet_alpha
            self.preferences = PreferenceSampler(self.preference_components, alpha)
        self.learned_backward = run.environment.backward_policy == "maximum_likelihood"
        self.reward = build_reward(run.reward) if scores_in_samplers(run) else None
        self.log_reward_floor = run.reward.log_reward_floor

    def draw(self, request: DrawRequest) -> DrawResult:
        t0 = time.perf_counter()
        if request.weights is not None:
            self.model.load_state_dict({k: torch.as_tensor(v) for k, v in request.weights.items()})
        rng = seeded_streams(request.seed)
        self.sampler.rng = rng
        before = dict(self.sampler.timers)
        betas = sample_betas(self.beta_range, request.n, rng)
        preferences = None if self.preferences is None else self.preferences.draw(request.n, rng)
        trajs = self.sampler.sample(self.model, betas, request.settings, preferences)
        timers = {k: self.sampler.timers[k] - before[k] for k in before}
        if self.reward is not None:
            t1 = time.perf_counter()
            score_trajectories(self.reward, trajs, self.log_reward_floor, self.preference_components)
            timers["reward"] = time.perf_counter() - t1
        generator = ecfp4_generator()
        identities = {
            t.smiles: (inchikey(t.smiles) or "", packed_ecfp4_bytes(t.smiles, generator))
            for t in trajs
            if t.valid and t.smiles is not None
        }
        graphs = self.sampler.runner.featurizer.pack(learner_molecules(trajs, self.learned_backward))
        return DrawResult(
            self.worker,
            request.version,
            trajs,
            time.perf_counter() - t0,
            timers,
            int(sum(self.env.unverified.values())),
            identities,
            graphs,
            None if self.reward is None else self.reward.oracle_calls,
        )

    def close(self) -> None:
        if self.reward is not None:
            self.reward.close()

    def draw_with(self, request: DrawRequest, weights: Weights) -> DrawResult:
        """``draw`` with the weights passed beside the request (Ray resolves an object-ref argument,
        so every actor reads one stored copy of a version)."""
        return self.draw(DrawRequest(request.n, request.version, request.seed, request.settings, weights))


def scores_in_samplers(config: RunConfig) -> bool:
    """Whether samplers score their own molecules: when nothing needs one place to do it, i.e. no
    ``reward.budget`` to count against (the learner keeps the one count) and no docking component
    (its own pool of processes or Ray actors scores it, fed by the learner)."""
    reward = config.reward
    return reward.budget is None and not any(c.type == "docking" for c in reward.components)


def seeded_streams(seed: tuple[int, ...]) -> np.random.Generator:
    """Seed this process's torch generator (the policy's draws) from ``seed`` and return the NumPy
    generator of the draw (β, subsamples, exploration): one request, one reproducible draw."""
    torch.manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1, np.uint64)[0] >> 1))
    return np.random.default_rng(list(seed))


class SamplerPool(ABC):
    """``n`` samplers behind one interface: ``submit`` a request to a sampler that holds none,
    ``next_result`` blocks until one finishes (raising ``SamplerLost`` for one that died, after
    which ``restart`` gives that slot a fresh sampler). ``LocalSamplerPool`` and ``RaySamplerPool``
    implement it."""

    n: int

    @abstractmethod
    def submit(self, worker: int, request: DrawRequest) -> None:
        """Send ``request`` to ``worker`` (which holds no other)."""

    @abstractmethod
    def next_result(self, timeout: float | None = None) -> DrawResult | None:
        """A finished draw, or None after ``timeout`` seconds."""

    @abstractmethod
    def restart(self, worker: int) -> None:
        """Replace ``worker`` with a fresh sampler (its request, if any, is forgotten)."""

    @abstractmethod
    def close(self) -> None:
        """Stop every sampler."""


# -- local processes ---------------------------------------------------------------------------
def _local_sampler_main(
    conn: Connection, config: dict[str, Any], chemistry: ChemistrySpec, worker: int
) -> None:
    """A sampler process: build the worker, say ready, then answer requests until None."""
    try:
        sampler = SamplerWorker(config, chemistry, worker)
    except BaseException as exc:
        conn.send(("failed", repr(exc)))
        return
    conn.send(("ready", None))
    try:
        while (request := conn.recv()) is not None:
            try:
                conn.send(("ok", sampler.draw(request)))
            except Exception as exc:  # a bug, not a lost process: the learner raises it
                conn.send(("error", repr(exc)))
    finally:
        sampler.close()


@dataclass
class _Process:
    process: Any
    conn: Connection


class LocalSamplerPool(SamplerPool):
    """Samplers as spawned processes of this machine (spawn: safe beside torch threads and CUDA)."""

    def __init__(
        self, config: RunConfig, chemistry: ChemistrySpec, n: int, start_timeout: float = 600.0
    ) -> None:
        self.n = n
        self._config = config.model_dump(mode="json")
        self._chemistry = chemistry
        self._context = mp.get_context("spawn")
        self._start_timeout = start_timeout
        self._procs: list[_Process | None] = [None] * n
        self._busy: set[int] = set()
        for worker in range(n):
            self._procs[worker] = self._spawn(worker)
        for worker in range(n):
            self._await_ready(worker)

    def _spawn(self, worker: int) -> _Process:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_local_sampler_main,
            args=(child, self._config, self._chemistry, worker),
            daemon=True,
            name=f"synflow-sampler-{worker}",
        )
        process.start()
        child.close()
        return _Process(process, parent)

    def _await_ready(self, worker: int) -> None:
        proc = self._procs[worker]
        assert proc is not None
        if not proc.conn.poll(self._start_timeout):
            raise RuntimeError(f"sampler {worker} did not start within {self._start_timeout:.0f} s")
        try:
            status, detail = proc.conn.recv()
        except EOFError:
            status, detail = "failed", f"the process exited (code {proc.process.exitcode})"
        if status != "ready":
            raise RuntimeError(f"sampler {worker} could not start: {detail}")

    def pid(self, worker: int) -> int:
        proc = self._procs[worker]
        assert proc is not None
        return int(proc.process.pid)

    def submit(self, worker: int, request: DrawRequest) -> None:
        proc = self._procs[worker]
        assert proc is not None and worker not in self._busy
        self._busy.add(worker)
        if request.weights is not None:  # plain arrays through the pipe (no shared-memory handles)
            weights = {k: v.numpy() for k, v in request.weights.items()}
            request = DrawRequest(request.n, request.version, request.seed, request.settings, weights)
        # one that died meanwhile is reported by next_result, through its sentinel
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError, OSError):
            proc.conn.send(request)

    def next_result(self, timeout: float | None = None) -> DrawResult | None:
        watched: dict[Any, int] = {}
        for worker in self._busy:
            proc = self._procs[worker]
            assert proc is not None
            watched[proc.conn] = worker
            watched[proc.process.sentinel] = worker
        if not watched:
            raise RuntimeError("no sampler holds a request")
        ready = wait(list(watched), timeout)
        if not ready:
            return None
        conns = [r for r in ready if isinstance(r, Connection)]
        for item in conns or ready:
            worker = watched[item]
            proc = self._procs[worker]
            assert proc is not None
            try:
                status, payload = proc.conn.recv()
            except (EOFError, ConnectionResetError, OSError):
                self._busy.discard(worker)
                raise SamplerLost(worker, f"process exited (code {proc.process.exitcode})") from None
            self._busy.discard(worker)
            if status == "error":
                raise RuntimeError(f"sampler {worker} failed: {payload}")
            assert isinstance(payload, DrawResult)
            return payload
        raise AssertionError("unreachable")

    def restart(self, worker: int) -> None:
        old = self._procs[worker]
        if old is not None:
            old.process.kill()
            old.process.join(5)
            old.conn.close()
        self._busy.discard(worker)
        self._procs[worker] = self._spawn(worker)
        self._await_ready(worker)

    def close(self) -> None:
        for proc in self._procs:
            if proc is None:
                continue
            with contextlib.suppress(BrokenPipeError, OSError):
                proc.conn.send(None)
        for proc in self._procs:
            if proc is None:
                continue
            proc.process.join(5)
            if proc.process.is_alive():
                proc.process.kill()
                proc.process.join(5)
            proc.conn.close()
        self._procs = [None] * self.n
        self._busy.clear()


# -- Ray actors --------------------------------------------------------------------------------
class RaySamplerPool(SamplerPool):
    """Samplers as Ray actors (``num_cpus=1`` each), on the cluster at ``address`` or a local Ray."""

    def __init__(
        self, config: RunConfig, chemistry: ChemistrySpec, n: int, address: str | None = None
    ) -> None:
        from synflow.ray_support import connect_ray

        self.n = n
        self._ray = connect_ray(address)
        self._config = config.model_dump(mode="json")
        self._chemistry = self._ray.put(chemistry)  # one stored copy for every actor
        self._actor_class = self._ray.remote(num_cpus=1, max_restarts=0)(SamplerWorker)
        self._actors: list[Any] = [self._new_actor(w) for w in range(n)]
        self._pending: dict[Any, int] = {}
        self._weights: tuple[int, Any] | None = None  # (version, object ref) shared by every actor
        self._ray.get([a.__ray_ready__.remote() for a in self._actors])

    def _new_actor(self, worker: int) -> Any:
        return self._actor_class.remote(self._config, self._chemistry, worker)

    def actor(self, worker: int) -> Any:
        return self._actors[worker]

    def submit(self, worker: int, request: DrawRequest) -> None:
        if request.weights is not None:
            # one copy in the object store per version, however many actors read it
            if self._weights is None or self._weights[0] != request.version:
                self._weights = (request.version, self._ray.put(dict(request.weights)))
            request = DrawRequest(request.n, request.version, request.seed, request.settings, None)
            ref = self._actors[worker].draw_with.remote(request, self._weights[1])
        else:
            ref = self._actors[worker].draw.remote(request)
        self._pending[ref] = worker

    def next_result(self, timeout: float | None = None) -> DrawResult | None:
        if not self._pending:
            raise RuntimeError("no sampler holds a request")
        ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if not ready:
            return None
        ref = ready[0]
        worker = self._pending.pop(ref)
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as exc:
            raise SamplerLost(worker, type(exc).__name__) from None
        except self._ray.exceptions.RayTaskError as exc:
            raise RuntimeError(f"sampler {worker} failed: {exc}") from None
        assert isinstance(result, DrawResult)
        return result

    def restart(self, worker: int) -> None:
        for ref, w in list(self._pending.items()):
            if w == worker:
                del self._pending[ref]
        with contextlib.suppress(Exception):  # already gone
            self._ray.kill(self._actors[worker], no_restart=True)
        self._actors[worker] = self._new_actor(worker)
        self._ray.get(self._actors[worker].__ray_ready__.remote())

    def close(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor, no_restart=True)
        self._actors = []
        self._pending.clear()


def open_sampler_pool(config: RunConfig, chem: SynthesisChemistry) -> SamplerPool:
    """The pool ``config.training`` asks for (``samplers`` ≥ 2), sampling over ``chem``."""
    t = config.training
    spec = ChemistrySpec.of(chem)
    if t.executor == "ray":
        return RaySamplerPool(config, spec, t.samplers, t.ray_address)
    return LocalSamplerPool(config, spec, t.samplers)
