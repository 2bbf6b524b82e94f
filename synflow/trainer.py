"""The SynFlowNet trainer: sample → score → f-TB loss on on-policy and replayed trajectories → step.

``Trainer(config, callbacks)`` builds everything from a ``RunConfig``; ``run()`` trains until
``training.steps``, until ``reward.budget`` unique molecules have been scored, or until a callback's
``should_stop()``, and says which in its ``TrainingOutcome``. Callbacks hear about scored molecules,
metrics, progress and checkpoints (``synflow.callbacks``). Checkpoints are written every
``checkpoint_every`` steps or ``checkpoint_seconds`` seconds, whichever comes first, and at the end;
they hold the model, EMA model, optimiser, scheduler, replay buffer, metrics, reward cache, every RNG
state and the step, so a resumed run continues exactly where the interrupted one would have.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.featurize import MolFeaturizer
from models.policy import SynthesisPolicy
from reactions.similarity import ecfp4_generator, packed_ecfp4_bytes
from reactions.smiles import inchikey
from synflow.actors import DrawRequest, SamplerLost, SamplerPool, open_sampler_pool
from synflow.assembly import build_policy, constrained, load_chemistry
from synflow.callbacks import SampledMolecule, StopReason, TrainerCallback, TrainingOutcome
from synflow.checkpoint import CHECKPOINT_NAME, read_checkpoint, write_checkpoint
from synflow.chemistry import SynthesisChemistry
from synflow.config import RunConfig, SamplingConfig, parse_run_config
from synflow.constraints import is_dead_end
from synflow.env import SynthesisEnv
from synflow.genetic import RouteGenetics
from synflow.losses import Divergence, ftb_loss
from synflow.metrics import MetricsTracker
from synflow.objective import backward_log_probs, forward_log_probs
from synflow.policy_runner import PolicyRunner, to_device
from synflow.preferences import PreferenceSampler, preference_dict, preference_vector
from synflow.replay import ReplayBuffer
from synflow.rewards import Reward, build_reward
from synflow.runtime import resolve_device
from synflow.sampler import SamplerSettings, TrajectorySampler, backward_trajectory
from synflow.schedules import beta_range, divergence_at, exploration_at, lr_factor, sample_betas
from synflow.trajectory import Trajectory, score_trajectories, target_reward, with_preference

__all__ = ["Trainer", "load_chemistry"]

log = logging.getLogger("synflow.trainer")


def balance_diagnostics(
    log_pf: torch.Tensor, log_pb: torch.Tensor, log_r: torch.Tensor, delta: torch.Tensor, div: Divergence
) -> dict[str, float]:
    """What a user can read off a batch about how close the sampler is to p ∝ R.

    ``ess``: the effective sample size, as a fraction of the batch, of the importance weights
    w ∝ e^{−Δ} = p*(τ)/p_θ(τ) (1 when the sampler matches the target on these trajectories; low when
    replayed or explored trajectories carry most of the weight). ``log_z_devgrad``: the batch's DevGrad
    estimate of log Z, to compare with the learned ``log_z``. ``balance_corr``: the correlation of
    log P_F(τ) − log P_B(τ|x) (the sampler's log p(x) along τ, up to log Z, with the known P_B) with
    log R(x) over the batch; 1 at the optimum.
    """
    weights = torch.softmax(-delta.double(), 0)
    out = {
        "ess": float(1.0 / (weights.square().sum() * delta.numel())),
        "log_z_devgrad": float(div.log_z_shift(log_pf - log_pb - log_r)),
    }
    estimate, target = (log_pf - log_pb).double(), log_r.double()
    if estimate.numel() > 2 and float(estimate.std()) > 0 and float(target.std()) > 0:
        out["balance_corr"] = float(torch.corrcoef(torch.stack([estimate, target]))[0, 1])
    return out


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        callbacks: Sequence[TrainerCallback] = (),
        chemistry: SynthesisChemistry | None = None,
        reward: Reward | None = None,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.device = resolve_device(config.training.device)
        self._seed(config.training.seed)
        # a given chemistry still obeys the config's start blocks and scaffold
        env_config = config.environment
        self.chem = constrained(chemistry, env_config) if chemistry else load_chemistry(env_config)
        self.env = SynthesisEnv(self.chem, verify_retro=config.environment.backward_policy != "route")
        # docking scorers run where the samplers do (local processes, or Ray actors)
        self.reward = reward or build_reward(
            config.reward, executor=config.training.executor, ray_address=config.training.ray_address
        )
        self._owns_reward = reward is None
        self.beta_range = beta_range(config.conditioning, config.reward.beta)
        # preference conditioning: w ~ Dirichlet(α) per trajectory over these components (None: off)
        self.preference_components = config.preference_components
        self.preferences = None
        if config.conditioning.preferences is not None and self.preference_components is not None:
            alpha = config.conditioning.preferences.dirichlet_alpha
            self.preferences = PreferenceSampler(self.preference_components, alpha)
        self.model = self._build_model().to(self.device)
        self.sampling_model = copy.deepcopy(self.model) if config.training.ema is not None else self.model
        self.optimizer = self._build_optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(config.training, step)
        )
        self.runner = PolicyRunner(MolFeaturizer(), self.block_features, self.device)
        self.sampler = TrajectorySampler(self.env, self.runner, self.rng)
        self.replay = ReplayBuffer(config.replay.capacity, config.replay.sampling, config.replay.rank_k)
        self.genetics = RouteGenetics(
            self.env, config.search.genetic, self.rng, config.environment.blocks_per_template
        )
        self.metrics = MetricsTracker(config.metrics.mode_threshold, config.metrics.mode_similarity)
        self.step = 0
        self.timers = {"chemistry": 0.0, "network": 0.0, "reward": 0.0}
        self._last_online: list[Trajectory] = []
        self._inchikeys: dict[str, str] = {}  # once per molecule ("": RDKit made none), for the store
        self.trajectories_trained = 0
        # actor–learner (training.samplers > 1): started on the first step, closed by run()/close()
        self._pool: SamplerPool | None = None
        self._pool_versions: dict[int, int] = {}  # sampler → learner step of the weights it holds
        self._pool_weights: tuple[int, dict[str, torch.Tensor]] | None = None
        self._pool_requests = itertools.count()
        self._pool_unverified: dict[int, int] = {}
        self._pool_calls: dict[int, int] = {}  # oracle calls each sampler made (when samplers score)
        self._sampler_calls = 0
        self._fingerprints_ahead: dict[str, bytes | None] = {}  # from samplers, for this step's records
        self.stale_batches = 0
        self.samplers_lost = 0
        self.staleness: Counter[int] = Counter()  # learner steps behind, per batch trained on

    # -- construction ------------------------------------------------------------------------
    def _seed(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def _build_model(self) -> SynthesisPolicy:
        model, self.block_features = build_policy(self.config, self.chem)
        return model

    def _build_optimizer(self) -> torch.optim.Optimizer:
        t = self.config.training
        log_z = list(self.model.log_z_head.parameters())
        ids = {id(p) for p in log_z}
        rest = [p for p in self.model.parameters() if id(p) not in ids]
        return torch.optim.Adam(
            [{"params": rest, "lr": t.lr}, {"params": log_z, "lr": self.config.loss.log_z_lr}],
            weight_decay=t.weight_decay,
        )

    # -- sampling and scoring ----------------------------------------------------------------
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        exploration: float = 0.0,
        betas: list[float] | None = None,
        exact_blocks: bool = False,
        preferences: np.ndarray | None = None,
    ) -> list[Trajectory]:
        """Draw ``n`` trajectories from the sampling (EMA) model and score their molecules.

        ``exact_blocks`` offers every compatible block to the block choice even when the run trains
        with a subsample (``environment.blocks_per_template``): the trained policy's own distribution.
        ``preferences`` [n, components]: the w of each trajectory of a preference-conditioned run
        (default: drawn from Dirichlet(α), as in training).
        """
        blocks = None if exact_blocks else self.config.environment.blocks_per_template
        settings = SamplerSettings(blocks, temperature, exploration)
        self.sampling_model.eval()
        before = dict(self.sampler.timers)
        betas = betas or sample_betas(self.beta_range, n, self.rng)
        if preferences is None and self.preferences is not None:
            preferences = self.preferences.draw(len(betas), self.rng)
        trajs = self.sampler.sample(self.sampling_model, betas, settings, preferences)
        for k in ("chemistry", "network"):
            self.timers[k] += self.sampler.timers[k] - before[k]
        self.score(trajs)
        return trajs

    def score(self, trajs: list[Trajectory]) -> None:
        """Reward every valid molecule; one the budget left unscored gets ``scored = False``."""
        t0 = time.perf_counter()
        floor = self.config.reward.log_reward_floor
        score_trajectories(self.reward, trajs, floor, self.preference_components)
        self.timers["reward"] += time.perf_counter() - t0

    def relabel(self, trajs: list[Trajectory]) -> list[Trajectory]:
        """Replayed trajectories for a preference-conditioned run: copies with a fresh w ~ Dirichlet(α)
        each and log R recomputed for it from the molecule's cached scores (no oracle call). A stored
        molecule tells the network about R_w at every w, and drawing w anew keeps the w the learner
        sees Dirichlet-distributed whichever molecules replay favours. Unconditioned runs: unchanged."""
        if self.preferences is None or not trajs:
            return trajs
        assert self.preference_components is not None
        draws = self.preferences.draw(len(trajs), self.rng)
        floor = self.config.reward.log_reward_floor
        return [
            with_preference(self.reward, t, tuple(map(float, w)), floor, self.preference_components)
            for t, w in zip(trajs, draws, strict=True)
        ]

    def _preference_of(self, traj: Trajectory) -> dict[str, float] | None:
        if traj.preference is None or self.preference_components is None:
            return None
        return preference_dict(self.preference_components, np.asarray(traj.preference))

    def _preference_tensor(self, trajs: list[Trajectory]) -> torch.Tensor | None:
        """w of each trajectory [n, components] on the device (None for an unconditioned run)."""
        if self.preferences is None:
            return None
        return torch.tensor([t.preference for t in trajs], dtype=torch.float32, device=self.device)

    def _goal(self, traj: Trajectory) -> float:
        """The reward ``traj`` trains towards (R_w with a preference, else the molecule's reward)."""
        return target_reward(self.reward, traj, self.preference_components)

    def _record(
        self, trajs: list[Trajectory], step: int
    ) -> tuple[list[SampledMolecule], list[SampledMolecule]]:
        """(new molecules, every valid sample) of scored trajectories, in sampling order."""
        new, samples = [], []
        # The store's similarity fingerprint, once per molecule and step: not kept across steps like
        # the InChIKey (256 bytes a molecule would grow with the run; recomputing one is 0.1 ms).
        fingerprints, self._fingerprints_ahead = self._fingerprints_ahead, {}  # the samplers' (if any)
        generator = ecfp4_generator()
        for t in trajs:
            first = self.metrics.update(t.smiles, t.reward, t.n_reactions)
            if t.smiles is None:
                continue
            key = self._inchikeys.get(t.smiles)
            if key is None:
                key = self._inchikeys[t.smiles] = inchikey(t.smiles) or ""
            if t.smiles not in fingerprints:
                fingerprints[t.smiles] = packed_ecfp4_bytes(t.smiles, generator)
            record = SampledMolecule(
                inchikey=key or None,
                fingerprint=fingerprints[t.smiles],
                smiles=t.smiles,
                reward=t.reward,
                step=step,
                scores=t.scores,
                route={"steps": t.route},
                log_reward=t.log_reward,
                beta=t.beta,
                error=t.reward_error,
                notes=t.reward_notes,
                preference=self._preference_of(t),
            )
            samples.append(record)
            if first:
                new.append(record)
        return new, samples

    def _report(self, new: list[SampledMolecule], samples: list[SampledMolecule]) -> None:
        for cb in self.callbacks:
            if new:
                cb.on_molecules(new)
            if samples:
                cb.on_samples(samples)

    # -- training ----------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """Sample, score and train on one batch. Molecules the budget left unscored are neither
        recorded nor trained on (the last batch of a budgeted run may be partial).

        With search on, genetic offspring of the replay pool (``search.genetic``) and regrown
        trajectories (``search.local``) are scored after the batch, under the same budget, and enter
        replay; ``training.inner_steps − 1`` further updates then train on replay draws."""
        cfg = self.config
        b = cfg.training.batch_size
        use_replay = len(self.replay) >= max(1, cfg.replay.warmup) and cfg.replay.fraction > 0
        n_replay = round(cfg.replay.fraction * b) if use_replay else 0
        if cfg.training.samplers > 1:
            drawn = self._pooled_draw(b - n_replay)
        else:
            drawn = self.sample(
                b - n_replay, cfg.training.temperature, exploration_at(cfg.training, self.step)
            )
        online = [t for t in drawn if t.scored]
        searched, accepted, search_info = self._search(online)
        new, samples = self._record(online + searched, self.step)
        replayed = self.relabel(self.replay.sample(n_replay, self.rng))
        # dead ends (no legal action: a required scaffold missing) carry no reward information: they
        # are not in the f-TB loss, only in the term that lowers their probability (synflow/constraints.py)
        trainable = [t for t in online if not is_dead_end(t)]
        dead = [t for t in online if is_dead_end(t)] if cfg.loss.dead_end_weight > 0 else []
        self.replay.add(trainable + accepted)
        batch = trainable + replayed
        info = self.optimise(batch, dead=dead, online=len(trainable)) if batch else {}
        for _ in range(cfg.training.inner_steps - 1):
            extra = self.relabel(self.replay.sample(cfg.training.batch_size, self.rng))
            if extra:
                info = self.optimise(extra, schedule=False)
        self._last_online = online
        info.update(search_info)
        info["unscored"] = float(len(drawn) - len(online))
        info["dead_ends"] = float(len(online) - len(trainable))
        info["unverified_products"] = float(
            sum(self.env.unverified.values()) + sum(self._pool_unverified.values())
        )
        if cfg.training.samplers > 1:
            info["stale_batches"] = float(self.stale_batches)
            info["samplers_lost"] = float(self.samplers_lost)
            info["mean_staleness"] = self.mean_staleness
        info["oracle_calls"] = float(self.reward.oracle_calls + self._sampler_calls)
        self.step += 1
        self._report(new, samples)
        return info

    # -- actor–learner ------------------------------------------------------------------------
    def _pooled_draw(self, n: int) -> list[Trajectory]:
        """The next batch from the sampler pool, scored (``training.samplers`` > 1).

        The sampler that delivered it gets its next request at once, with the newest weights, so it
        samples while this batch trains. A batch drawn with weights more than ``max_staleness``
        learner steps old is dropped; a sampler that died is replaced and its request re-issued.
        """
        t = self.config.training
        if self._pool is None:
            self._pool = open_sampler_pool(self.config, self.chem)
            for worker in range(self._pool.n):
                self._submit(worker, n)
        t0 = time.perf_counter()
        while True:
            try:
                result = self._pool.next_result()
            except SamplerLost as lost:
                log.warning("%s; starting a new one and re-issuing its request", lost)
                self.samplers_lost += 1
                self._pool.restart(lost.worker)
                self._pool_versions.pop(lost.worker, None)
                self._pool_calls.pop(lost.worker, None)
                self._submit(lost.worker, n)
                continue
            assert result is not None
            self._submit(result.worker, n)
            if self.step - result.version <= t.max_staleness:
                self.staleness[self.step - result.version] += 1
                break
            self.stale_batches += 1
        self.timers["sampler_wait"] = self.timers.get("sampler_wait", 0.0) + time.perf_counter() - t0
        for key, seconds in result.timers.items():
            self.timers[f"sampler_{key}"] = self.timers.get(f"sampler_{key}", 0.0) + seconds
        self._pool_unverified[result.worker] = result.unverified
        if result.oracle_calls is None:
            self.score(result.trajectories)
        else:  # scored by the sampler (no budget, no docking: see synflow.actors.scores_in_samplers)
            self._sampler_calls += result.oracle_calls - self._pool_calls.get(result.worker, 0)
            self._pool_calls[result.worker] = result.oracle_calls
        if result.graphs is not None:
            self.runner.featurizer.preload(result.graphs)
        for smiles, (key, fingerprint) in result.identities.items():
            self._inchikeys.setdefault(smiles, key)
            self._fingerprints_ahead[smiles] = fingerprint
        return result.trajectories

    @property
    def mean_staleness(self) -> float:
        """How many learner steps old the trained batches' weights were, on average (0 with 1 sampler)."""
        batches = sum(self.staleness.values())
        return sum(k * v for k, v in self.staleness.items()) / batches if batches else 0.0

    def _submit(self, worker: int, n: int) -> None:
        """Give ``worker`` its next draw; the weights go along every ``sync_every`` learner steps."""
        assert self._pool is not None
        t = self.config.training
        held = self._pool_versions.get(worker)
        weights = None
        if held is None or self.step - held >= t.sync_every:
            if self._pool_weights is None or self._pool_weights[0] != self.step:
                state = self.sampling_model.state_dict()
                self._pool_weights = (self.step, {k: v.detach().cpu().clone() for k, v in state.items()})
            weights = self._pool_weights[1]
            held = self._pool_versions[worker] = self.step
        blocks = self.config.environment.blocks_per_template
        settings = SamplerSettings(blocks, t.temperature, exploration_at(t, self.step))
        seed = (t.seed, self.step, worker, next(self._pool_requests))  # a resumed run draws anew
        self._pool.submit(worker, DrawRequest(n, held, seed, settings, weights))

    def close(self) -> None:
        """Stop the sampler pool and the reward's scorers (docking workers or actors) this trainer
        started. ``run`` stops the pool when it returns; the reward stays usable until this."""
        self._close_pool()
        if self._owns_reward:
            self.reward.close()

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
            self._pool_versions.clear()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _search(
        self, online: list[Trajectory]
    ) -> tuple[list[Trajectory], list[Trajectory], dict[str, float]]:
        """Genetic offspring and local-search trajectories of this step, scored: (every scored one,
        the ones that enter replay, figures). Off (no draws, no calls) unless ``search`` asks."""
        search = self.config.search
        if not search.genetic.offspring and not search.local.candidates:
            return [], [], {}
        seen = self.metrics.rewards  # every molecule scored so far (the batch's are recorded after)
        fresh = {t.smiles for t in online if t.smiles is not None}

        def known(smiles: str) -> bool:
            return smiles in seen or smiles in fresh
        pool, weights = self.replay.probabilities()
        if not pool:
            pool = [t for t in online if t.valid]
            weights = np.ones(len(pool))
        scored: list[Trajectory] = []
        accepted: list[Trajectory] = []
        info: dict[str, float] = {}
        if search.genetic.offspring and pool and not self.reward.exhausted:
            t0 = time.perf_counter()
            betas = sample_betas(self.beta_range, search.genetic.offspring, self.rng)
            children = self.genetics.offspring(pool, weights, search.genetic.offspring, betas, known)
            if self.preferences is not None:  # offspring train at a fresh w each, like samples
                for child, w in zip(children, self.preferences.draw(len(children), self.rng), strict=True):
                    child.preference = tuple(map(float, w))
            self.timers["chemistry"] += time.perf_counter() - t0
            self.score(children)
            children = [t for t in children if t.scored]
            fresh.update(t.smiles for t in children if t.smiles is not None)
            scored += children
            accepted += children
            info["offspring"] = float(len(children))
            if children:
                info["offspring_reward"] = float(np.mean([t.reward for t in children]))
        if search.local.candidates and pool and not self.reward.exhausted:
            regrown, kept = self._local_search(pool, weights, known, fresh)
            scored += regrown
            accepted += kept
            info["local_search"] = float(len(regrown))
            info["local_search_accepted"] = float(len(kept))
        return scored, accepted, info

    def _local_search(
        self,
        pool: list[Trajectory],
        weights: np.ndarray,
        known: Callable[[str], bool],
        taken: set[str],
    ) -> tuple[list[Trajectory], list[Trajectory]]:
        """LS-GFN's move: undo the last ``search.local.backtrack`` reactions of trajectories drawn
        from ``pool`` (back to the start block at most) and regrow them with the sampling policy;
        a regrown molecule is kept for training when its reward beats its parent's. ``known`` says
        whether a molecule was already scored; new ones are added to ``taken`` (this step's). Returns
        (every new scored molecule's trajectory, the kept ones)."""
        cfg = self.config
        n = cfg.search.local.candidates
        parents = [pool[i] for i in self.rng.choice(len(pool), size=n, p=weights / weights.sum())]
        prefixes = []
        for parent in parents:
            actions = len(parent.steps) - 1
            prefixes.append((parent, max(1, actions - cfg.search.local.backtrack)))
        settings = SamplerSettings(
            cfg.environment.blocks_per_template,
            cfg.training.temperature,
            exploration_at(cfg.training, self.step),
        )
        self.sampling_model.eval()
        before = dict(self.sampler.timers)
        regrown = self.sampler.regrow(self.sampling_model, prefixes, settings)
        for k in ("chemistry", "network"):
            self.timers[k] += self.sampler.timers[k] - before[k]
        fresh: list[Trajectory] = []
        owners: list[Trajectory] = []
        for parent, child in zip(parents, regrown, strict=True):
            if child.valid and child.smiles is not None and not known(child.smiles):
                taken.add(child.smiles)
                fresh.append(child)
                owners.append(parent)
        self.score(fresh)
        pairs = [(c, p) for c, p in zip(fresh, owners, strict=True) if c.scored]
        # a regrown trajectory keeps its parent's β and w, so R_w compares like with like
        return [c for c, _ in pairs], [c for c, p in pairs if self._goal(c) > self._goal(p)]

    def optimise(
        self, batch: list[Trajectory], schedule: bool = True, dead: Sequence[Trajectory] = (), online: int = 0
    ) -> dict[str, float]:
        """One gradient step on ``batch``; ``schedule`` advances the learning-rate schedule (once per
        training step: the extra inner updates of a step leave it where it is). ``dead``: the dead ends
        drawn on-policy this step beside the first ``online`` trajectories of ``batch`` (see ``_loss``)."""
        t0 = time.perf_counter()
        self.model.train()
        loss, figures = self._loss(batch, dead, online)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm, clip = None, self.config.training.grad_clip
        if clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        if schedule:
            self.scheduler.step()
        self._update_ema()
        # The figures are read only now: on a GPU, reading one (a sync) before the backward pass would
        # leave the GPU idle while the CPU queues the backward pass and the optimiser step.
        info = figures()
        if grad_norm is not None:
            info["grad_norm"] = float(grad_norm)
        self.trajectories_trained += len(batch)
        self.timers["network"] += time.perf_counter() - t0
        return info

    def loss(self, batch: list[Trajectory]) -> tuple[torch.Tensor, dict[str, float]]:
        """The f-TB loss of a batch (plus −log P_B for the maximum-likelihood backward policy)."""
        loss, figures = self._loss(batch)
        return loss, figures()

    def _loss(
        self, batch: list[Trajectory], dead: Sequence[Trajectory] = (), online: int = 0
    ) -> tuple[torch.Tensor, Callable[[], dict[str, float]]]:
        """The loss, and a function that reads the batch's figures (later: reading syncs a GPU).

        With ``dead`` ends drawn on-policy beside the first ``online`` trajectories of ``batch`` (n in
        all, a fraction b of them dead ends), the loss gains the score-function (REINFORCE) estimate
        of λ·P(dead end) with the batch's dead-end rate as baseline:
        λ/n · Σ_τ (1_dead(τ) − b) log P_F(τ). Its expected gradient is λ ∇P(dead end)
        (E[1_dead ∇log P_F(τ)] = ∇ Σ_dead P_F(τ); the baseline adds E[∇log P_F(τ)] = 0), so it lowers
        the dead ends' probability and, through the baseline, raises the molecules' routes beside
        them. The f-TB loss is blind to how much mass the dead ends take (log Z absorbs it), so the
        joint minimum is the f-TB one with no dead-end mass: still ∝ R over the molecules."""
        dev = self.device
        log_pf_all = forward_log_probs(self.runner, self.model, [*batch, *dead])
        log_pf, dead_log_pf = log_pf_all[: len(batch)], log_pf_all[len(batch):]
        columns = [[t.log_reward for t in batch], [t.beta for t in batch], [t.uniform_log_pb for t in batch]]
        tensors = [torch.tensor(c) for c in columns]
        if self.preferences is not None:  # w per trajectory, for log Z(β, w)
            tensors.append(torch.tensor([t.preference for t in batch], dtype=torch.float32))
        # one non-blocking copy for them all (a torch.tensor(..., device=cuda) call per column syncs each)
        moved = to_device(tensors, dev)
        log_r, beta, uniform_log_pb = moved[:3]
        preference = moved[3] if len(moved) > 3 else None
        backward_loss = torch.zeros((), device=dev)
        if self.config.environment.backward_policy != "maximum_likelihood":  # uniform, or route (0)
            log_pb = uniform_log_pb
        else:
            learned = backward_log_probs(self.runner, self.model, batch)
            log_pb = learned.detach()
            backward_loss = -learned.mean()
        log_z = None
        if self.config.loss.log_z == "learned":
            log_z = self.model.log_z(beta, preference)
        div = divergence_at(self.config.loss, self.step)
        out = ftb_loss(log_pf, log_pb, log_r, div, log_z=log_z, temper=self.config.loss.temper)
        loss = out.loss + self.config.loss.backward_policy_weight * backward_loss
        dead_end_term = torch.zeros((), device=dev)
        if len(dead):
            n = online + len(dead)
            b = len(dead) / n
            advantage = (1 - b) * dead_log_pf.sum() - b * log_pf[:online].sum()
            dead_end_term = self.config.loss.dead_end_weight * advantage / n
            loss = loss + dead_end_term
        lr = float(self.scheduler.get_last_lr()[0])  # before the step that may change it

        def figures() -> dict[str, float]:
            return {
                "loss": float(out.loss.detach()),
                "log_z": float(out.log_z),
                "delta_abs": float(out.delta.detach().abs().mean()),
                "backward_loss": float(backward_loss.detach()),
                "dead_end_term": float(dead_end_term.detach()),
                "lr": lr,
                **balance_diagnostics(log_pf.detach(), log_pb, log_r, out.delta.detach(), div),
            }

        return loss, figures

    @torch.no_grad()
    def sampler_balance(self, trajs: list[Trajectory]) -> dict[str, float]:
        """How far the sampler's p(x) is from R(x)^β / Z, estimated from backward trajectories.

        p(x) = E_{τ ~ P_B(·|x)}[P_F(τ) / P_B(τ|x)], so log p̂(x) = log mean_k P_F(τ_k)/P_B(τ_k|x) over
        ``metrics.log_p_paths`` uniform backward draws (unbiased for p(x), not for its log). Reported:
        ``log_p_corr``, the correlation of log p̂(x) with β log R(x) over up to ``metrics.log_p_molecules``
        distinct molecules of the batch (1 at the optimum), and with a learned log Z ``log_p_error``,
        the mean |log p̂(x) − β log R(x) + log Z(β)| (0 at the optimum). Only with the uniform backward
        policy, whose P_B is known and can be sampled without the network.
        """
        m = self.config.metrics
        if m.log_p_molecules == 0 or self.config.environment.backward_policy != "uniform":
            return {}
        chosen: dict[str, Trajectory] = {}
        for t in trajs:
            if t.valid and t.smiles is not None and t.smiles not in chosen and t.reward_error is None:
                chosen[t.smiles] = t
            if len(chosen) == m.log_p_molecules:
                break
        if len(chosen) < 3:
            return {}
        molecules = list(chosen.values())
        # its own stream: the diagnostic never changes what training draws
        rng = np.random.default_rng([self.config.training.seed, self.step])
        log_p = self.estimate_log_p(molecules, m.log_p_paths, rng)
        model = self.sampling_model
        target = torch.tensor([t.log_reward for t in molecules], dtype=torch.float64)
        ok = torch.isfinite(log_p)
        out: dict[str, float] = {}
        if int(ok.sum()) > 2 and float(log_p[ok].std()) > 0 and float(target[ok].std()) > 0:
            out["log_p_corr"] = float(torch.corrcoef(torch.stack([log_p[ok], target[ok]]))[0, 1])
        if self.config.loss.log_z == "learned" and bool(ok.any()):
            beta = torch.tensor([t.beta for t in molecules], device=self.device)
            log_z = model.log_z(beta, self._preference_tensor(molecules)).double().cpu()
            out["log_p_error"] = float((log_p - target + log_z)[ok].abs().mean())
        return out

    @torch.no_grad()
    def estimate_log_p(
        self, molecules: list[Trajectory], paths: int, rng: np.random.Generator
    ) -> torch.Tensor:
        """log p̂(x) per molecule [n] (float64; −inf when no backward draw has P_F > 0): the log of the
        mean of P_F(τ)/P_B(τ|x) over ``paths`` trajectories drawn backward from x with the uniform P_B,
        under the sampling model at the molecule's β."""
        t0 = time.perf_counter()
        drawn: list[Trajectory] = []
        log_pb: list[float] = []
        owner: list[int] = []
        for i, t in enumerate(molecules):
            assert t.smiles is not None
            for _ in range(paths):
                found = backward_trajectory(self.env, t.smiles, t.beta, rng, t.preference)
                if found is not None:
                    drawn.append(found[0])
                    log_pb.append(found[1])
                    owner.append(i)
        self.timers["chemistry"] += time.perf_counter() - t0
        n = len(molecules)
        if not drawn:
            return torch.full((n,), -math.inf, dtype=torch.float64)
        t1 = time.perf_counter()
        model = self.sampling_model
        was_training = model.training
        model.eval()
        log_pf = forward_log_probs(self.runner, model, drawn).double().cpu()
        model.train(was_training)
        ratio = log_pf - torch.tensor(log_pb, dtype=torch.float64)
        index = torch.tensor(owner)
        peak = torch.full((n,), -math.inf, dtype=torch.float64).scatter_reduce(0, index, ratio, "amax")
        finite_peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        sums = torch.zeros(n, dtype=torch.float64).index_add(0, index, (ratio - finite_peak[index]).exp())
        self.timers["network"] += time.perf_counter() - t1
        return finite_peak + sums.log() - math.log(paths)

    def _update_ema(self) -> None:
        decay = self.config.training.ema
        if decay is None:
            return
        with torch.no_grad():
            for p_ema, p in zip(self.sampling_model.parameters(), self.model.parameters(), strict=True):
                p_ema.mul_(decay).add_(p, alpha=1 - decay)
            for b_ema, b in zip(self.sampling_model.buffers(), self.model.buffers(), strict=True):
                b_ema.copy_(b)

    def _stop_requested(self) -> bool:
        return any(cb.should_stop() for cb in self.callbacks)

    def run(self, steps: int | None = None) -> TrainingOutcome:
        """Train until ``steps`` (default ``training.steps``), the oracle budget is spent, or a
        callback asks to stop; returns why, at which step, and the final metrics."""
        try:
            return self._run(steps)
        finally:
            self._close_pool()

    def _run(self, steps: int | None) -> TrainingOutcome:
        total = self.config.training.steps if steps is None else steps
        t = self.config.training
        last_checkpoint = time.monotonic()
        reason: StopReason = "completed"
        info: dict[str, float] = {}
        for cb in self.callbacks:
            cb.on_step(self.step, total, info)
        while self.step < total:
            if self.reward.exhausted:
                reason = "budget_spent"
                break
            if self._stop_requested():
                return TrainingOutcome("stopped", self.step, self.metrics.summary())
            info = self.train_step()
            spent = self.reward.exhausted
            last = self.step == total or spent
            if self.step % t.log_every == 0 or last:
                info.update(self.sampler_balance(self._last_online))
                self._emit_metrics({**info, **self.metrics.summary(diversity=last)})
            for cb in self.callbacks:
                cb.on_step(self.step, total, info)
            due = (
                self.step % t.checkpoint_every == 0
                or time.monotonic() - last_checkpoint >= t.checkpoint_seconds
            )
            if self.checkpoint_dir and (due or last):
                if (
                    self._stop_requested()
                ):  # e.g. the lease moved to another worker: never overwrite its files
                    return TrainingOutcome("stopped", self.step, self.metrics.summary())
                self._checkpoint()
                last_checkpoint = time.monotonic()
            if spent:
                reason = "budget_spent"
                break
        return TrainingOutcome(reason, self.step, self.metrics.summary())

    def _emit_metrics(self, summary: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_metrics(self.step, summary)

    def _checkpoint(self) -> None:
        assert self.checkpoint_dir is not None
        path = self.checkpoint_dir / CHECKPOINT_NAME
        self.save_checkpoint(path)
        self.chem.flush_store()  # retro-analyses made so far, for the resumed run and later ones
        for cb in self.callbacks:
            cb.on_checkpoint(self.step, path)

    # -- sampling a trained model ------------------------------------------------------------
    def draw(self, sampling: SamplingConfig) -> TrainingOutcome:
        """Draw ``sampling.count`` molecules from the trained policy (every compatible block offered,
        whatever subsample training used) in batches of ``training.batch_size``, reporting each
        batch's scored molecules (``on_samples``, step = batch number) and progress to the callbacks.

        A preference-conditioned run draws at ``sampling.preference`` (default: the reward's configured
        weights), i.e. ∝ R_w for that w; raises ``ConfigError`` naming ``preference.<name>`` for a
        component the run was not conditioned on (or ``preference`` for an unconditioned run)."""
        w = preference_vector(self.config, sampling.preference)
        batch_size = self.config.training.batch_size
        batches = -(-sampling.count // batch_size)
        drawn = 0
        for number in range(1, batches + 1):
            if self._stop_requested():
                return TrainingOutcome("stopped", number - 1, {})
            if self.reward.exhausted:
                return TrainingOutcome("budget_spent", number - 1, {})
            n = min(batch_size, sampling.count - drawn)
            preferences = None if w is None else np.tile(w, (n, 1))
            drawn_now = self.sample(n, sampling.temperature, exact_blocks=True, preferences=preferences)
            trajs = [t for t in drawn_now if t.valid and t.scored]
            drawn += n
            self._report(*self._record(trajs, number))
            for cb in self.callbacks:
                cb.on_step(number, batches, {"drawn": float(drawn)})
        return TrainingOutcome("completed", batches, {})

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json"),
            "step": self.step,
            "model": self.model.state_dict(),
            "sampling_model": self.sampling_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "replay": self.replay.state_dict(),
            "metrics": self.metrics.state_dict(),
            "reward": self.reward.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "generator": self.rng.bit_generator.state,
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            "trajectories_trained": self.trajectories_trained,
            # CPU kernels split sums across threads, and float addition is not associative: the
            # same step on 1 and on 2 threads differs in the last bits, and training amplifies it.
            "torch_threads": torch.get_num_threads(),
        }

    def save_checkpoint(self, path: str | Path) -> None:
        """Write atomically (``synflow.checkpoint``); raises ``CheckpointWriteError`` naming the path."""
        write_checkpoint(self.state_dict(), path, self.step)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> Trainer:
        """A trainer rebuilt from the config stored in a checkpoint, with its state loaded."""
        state = read_checkpoint(path)
        trainer = cls(parse_run_config(state["config"]), **kwargs)
        trainer.load_state(state)
        return trainer

    def resume(self) -> bool:
        """Load ``checkpoint_dir/last.pt`` when there is one; True when it was loaded."""
        if self.checkpoint_dir is None or not (self.checkpoint_dir / CHECKPOINT_NAME).exists():
            return False
        self.load_checkpoint(self.checkpoint_dir / CHECKPOINT_NAME)
        return True

    def load_checkpoint(self, path: str | Path) -> None:
        # Read onto the CPU whatever the device: load_state_dict copies the weights and the optimiser
        # state to the model's device, and the RNG states must stay CPU tensors (mapped to CUDA,
        # torch.set_rng_state raises "RNG state must be a torch.ByteTensor").
        self.load_state(read_checkpoint(path))

    def load_state(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.model.load_state_dict(state["model"])
        self.sampling_model.load_state_dict(state["sampling_model"])
        if "optimizer" not in state:
            # weights only: a generator imported from a shared file (synflow.bundle) samples from the
            # state its config's seed gives; it carries no optimiser, replay or RNG state to restore
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.replay.load_state_dict(state["replay"])
        self.metrics.load_state_dict(state["metrics"])
        if "reward" in state:
            self.reward.load_state_dict(state["reward"])
        self.trajectories_trained = state.get("trajectories_trained", 0)
        threads = state.get("torch_threads")
        if threads and self.device.type == "cpu" and threads != torch.get_num_threads():
            # Continue on the thread count the run was trained with, so a run resumed on another
            # worker (another machine, another OMP_NUM_THREADS) stays bit-identical on CPU.
            torch.set_num_threads(threads)
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"].cpu())
        self.rng.bit_generator.state = rng["generator"]
        if rng.get("cuda") is not None and torch.cuda.is_available():
            for index, cuda_state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state.cpu(), index)
