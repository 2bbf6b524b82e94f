"""The SynFlowNet trainer: sample → score → f-TB loss on on-policy and replayed trajectories → step.

``Trainer(config)`` builds everything from a ``RunConfig``; ``run()`` trains to ``training.steps``,
telling callbacks about new molecules and metrics and writing atomic checkpoints that hold the
model, EMA model, optimiser, scheduler, replay buffer, metrics, every RNG state and the step, so a
resumed run continues exactly where the interrupted one would have.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.featurize import BlockFeatures, MolFeaturizer
from models.policy import SynthesisPolicy
from synflow.callbacks import MoleculeRecord, TrainerCallback
from synflow.chemistry import SynthesisChemistry
from synflow.config import EnvironmentConfig, RunConfig
from synflow.env import SynthesisEnv
from synflow.losses import AlphaSchedule, Divergence, divergence, ftb_loss
from synflow.metrics import MetricsTracker
from synflow.objective import backward_log_probs, forward_log_probs
from synflow.policy_runner import PolicyRunner
from synflow.replay import ReplayBuffer
from synflow.rewards import Reward, build_reward, log_reward
from synflow.runtime import resolve_device
from synflow.sampler import SamplerSettings, TrajectorySampler
from synflow.trajectory import Trajectory

__all__ = ["CheckpointWriteError", "Trainer", "load_chemistry"]


def load_chemistry(env: EnvironmentConfig) -> SynthesisChemistry:
    """Library, templates and compatibility index named by the config (bundled defaults if unset)."""
    from reactions.index import build_compatibility_index
    from reactions.library import default_library, load_building_blocks
    from reactions.templates import default_template_set, load_template_set

    library = load_building_blocks(env.building_blocks) if env.building_blocks else default_library()
    templates = load_template_set(env.templates) if env.templates else default_template_set()
    index = build_compatibility_index(library, templates, cache_dir=env.cache_dir)
    return SynthesisChemistry(library, templates, index, env.max_reactions, env.min_reactions)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, I/O error); the previous one is intact."""

    def __init__(self, path: Path, step: int, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(cause.errno, f"checkpoint at step {step} not written to {path}: {reason}")
        self.path, self.step = path, step


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        self.chem = chemistry or load_chemistry(config.environment)
        self.env = SynthesisEnv(self.chem, verify_retro=config.environment.backward_policy != "route")
        self.reward = reward or build_reward(config.reward)
        self.model = self._build_model().to(self.device)
        self.sampling_model = copy.deepcopy(self.model) if config.training.ema is not None else self.model
        self.optimizer = self._build_optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.runner = PolicyRunner(MolFeaturizer(), self.block_features, self.device)
        self.sampler = TrajectorySampler(self.env, self.runner, self.rng)
        self.replay = ReplayBuffer(config.replay.capacity, config.replay.sampling)
        self.metrics = MetricsTracker(config.metrics.mode_threshold, config.metrics.mode_similarity)
        self.step = 0
        self.timers = {"chemistry": 0.0, "network": 0.0, "reward": 0.0}
        self.trajectories_trained = 0

    # -- construction ------------------------------------------------------------------------
    def _seed(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    @property
    def beta_range(self) -> tuple[float, float]:
        fixed = self.config.reward.beta
        return tuple(self.config.conditioning.beta_range or (fixed, fixed))  # type: ignore[return-value]

    def _build_model(self) -> SynthesisPolicy:
        lib = self.chem.library
        self.block_features = BlockFeatures(lib.fingerprints, lib.n_bits, lib.descriptors)  # type: ignore[attr-defined]
        m = self.config.model
        model = SynthesisPolicy(
            n_templates=len(self.chem.templates),
            max_depth=self.chem.max_reactions,
            fp_dim=self.block_features.fp_dim,
            desc_dim=self.block_features.desc_dim,
            beta_range=self.beta_range,
            hidden=m.hidden,
            layers=m.layers,
            conv=m.conv,
            block_hidden=m.block_hidden,
            thermometer_bins=self.config.conditioning.thermometer_bins,
        )
        model.blocks.set_descriptor_stats(*self.block_features.descriptor_stats())
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

    def _lr_factor(self, step: int) -> float:
        t = self.config.training
        if t.warmup_steps and step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        frac = min(1.0, step / max(1, t.steps))
        if t.lr_schedule == "cosine":
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
        if t.lr_schedule == "linear":
            return 1.0 - 0.9 * frac
        return 1.0

    # -- schedules ---------------------------------------------------------------------------
    def divergence_at(self, step: int) -> Divergence:
        loss = self.config.loss
        if loss.divergence != "alpha":
            return divergence(loss.divergence)
        if loss.alpha_schedule is not None:
            s = loss.alpha_schedule
            return divergence("alpha", alpha=AlphaSchedule(s.start, s.end, s.steps, s.kind)(step))
        return divergence("alpha", alpha=float(loss.alpha))  # type: ignore[arg-type]

    def exploration_at(self, step: int) -> float:
        t = self.config.training
        if t.exploration_end is None:
            return t.exploration
        frac = min(1.0, step / max(1, t.steps))
        return t.exploration + (t.exploration_end - t.exploration) * frac

    def sample_betas(self, n: int) -> list[float]:
        lo, hi = self.beta_range
        if lo == hi:
            return [lo] * n
        return [float(b) for b in self.rng.uniform(lo, hi, size=n)]

    # -- sampling and scoring ----------------------------------------------------------------
    def sample(
        self, n: int, temperature: float = 1.0, exploration: float = 0.0, betas: list[float] | None = None
    ) -> list[Trajectory]:
        """Draw ``n`` trajectories from the sampling (EMA) model and score their molecules."""
        settings = SamplerSettings(self.config.environment.blocks_per_template, temperature, exploration)
        self.sampling_model.eval()
        before = dict(self.sampler.timers)
        trajs = self.sampler.sample(self.sampling_model, betas or self.sample_betas(n), settings)
        for k in ("chemistry", "network"):
            self.timers[k] += self.sampler.timers[k] - before[k]
        self.score(trajs)
        return trajs

    def score(self, trajs: list[Trajectory]) -> None:
        t0 = time.perf_counter()
        valid = [t for t in trajs if t.valid]
        floor = self.config.reward.log_reward_floor
        batch = self.reward.score([t.smiles for t in valid]) if valid else None
        for i, t in enumerate(valid):
            assert batch is not None
            t.reward = float(batch.reward[i])
            t.scores = {k: float(v[i]) for k, v in batch.scores.items()}
            t.reward_error = batch.errors[i] if batch.errors else None
            t.log_reward = float(log_reward([t.reward], t.beta, floor)[0])
        for t in trajs:
            if not t.valid:
                t.log_reward = floor
        self.timers["reward"] += time.perf_counter() - t0

    def _record(self, trajs: list[Trajectory]) -> tuple[list[MoleculeRecord], list[MoleculeRecord]]:
        """(new molecules, every valid sample) of the sampled trajectories, in sampling order."""
        new, samples = [], []
        for t in trajs:
            first = self.metrics.update(t.smiles, t.reward, t.n_reactions)
            if t.smiles is None:
                continue
            record = MoleculeRecord(
                t.smiles, t.reward, t.scores, {"steps": t.route}, self.step, t.log_reward, t.beta,
                t.reward_error,
            )
            samples.append(record)
            if first:
                new.append(record)
        return new, samples

    # -- training ----------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        cfg = self.config
        b = cfg.training.batch_size
        use_replay = len(self.replay) >= max(1, cfg.replay.warmup) and cfg.replay.fraction > 0
        n_replay = round(cfg.replay.fraction * b) if use_replay else 0
        online = self.sample(b - n_replay, cfg.training.temperature, self.exploration_at(self.step))
        records, samples = self._record(online)
        replayed = self.replay.sample(n_replay, self.rng)
        self.replay.add(online)
        info = self.optimise(online + replayed)
        self.step += 1
        for cb in self.callbacks:
            if records:
                cb.on_molecules(records)
            if samples:
                cb.on_samples(samples)
        return info

    def optimise(self, batch: list[Trajectory]) -> dict[str, float]:
        t0 = time.perf_counter()
        self.model.train()
        loss, info = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.training.grad_clip is not None:
            info["grad_norm"] = float(
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.training.grad_clip)
            )
        self.optimizer.step()
        self.scheduler.step()
        self._update_ema()
        self.trajectories_trained += len(batch)
        self.timers["network"] += time.perf_counter() - t0
        return info

    def loss(self, batch: list[Trajectory]) -> tuple[torch.Tensor, dict[str, float]]:
        """The f-TB loss of a batch (plus −log P_B for the maximum-likelihood backward policy)."""
        dev = self.device
        log_pf = forward_log_probs(self.runner, self.model, batch)
        log_r = torch.tensor([t.log_reward for t in batch], device=dev)
        beta = torch.tensor([t.beta for t in batch], device=dev)
        backward_loss = torch.zeros((), device=dev)
        if self.config.environment.backward_policy != "maximum_likelihood":  # uniform, or route (0)
            log_pb = torch.tensor([t.uniform_log_pb for t in batch], device=dev)
        else:
            learned = backward_log_probs(self.runner, self.model, batch)
            log_pb = learned.detach()
            backward_loss = -learned.mean()
        log_z = self.model.log_z(beta) if self.config.loss.log_z == "learned" else None
        out = ftb_loss(
            log_pf, log_pb, log_r, self.divergence_at(self.step), log_z=log_z, temper=self.config.loss.temper
        )
        loss = out.loss + self.config.loss.backward_policy_weight * backward_loss
        info = {
            "loss": float(out.loss.detach()),
            "log_z": float(out.log_z),
            "delta_abs": float(out.delta.detach().abs().mean()),
            "backward_loss": float(backward_loss.detach()),
            "lr": self.scheduler.get_last_lr()[0],
        }
        return loss, info

    def _update_ema(self) -> None:
        decay = self.config.training.ema
        if decay is None:
            return
        with torch.no_grad():
            for p_ema, p in zip(self.sampling_model.parameters(), self.model.parameters(), strict=True):
                p_ema.mul_(decay).add_(p, alpha=1 - decay)
            for b_ema, b in zip(self.sampling_model.buffers(), self.model.buffers(), strict=True):
                b_ema.copy_(b)

    def run(
        self, steps: int | None = None, on_step: Callable[[int, dict[str, float]], None] | None = None
    ) -> dict[str, float]:
        """Train until ``steps`` (default ``training.steps``); returns the final metrics."""
        total = self.config.training.steps if steps is None else steps
        t = self.config.training
        while self.step < total:
            info = self.train_step()
            if self.step % t.log_every == 0 or self.step == total:
                summary = {**info, **self.metrics.summary(diversity=self.step == total)}
                for cb in self.callbacks:
                    cb.on_metrics(self.step, summary)
            if on_step is not None:
                on_step(self.step, info)
            if self.checkpoint_dir and (self.step % t.checkpoint_every == 0 or self.step == total):
                self._checkpoint()
        return self.metrics.summary()

    def _checkpoint(self) -> None:
        assert self.checkpoint_dir is not None
        path = self.checkpoint_dir / "last.pt"
        self.save_checkpoint(path)
        for cb in self.callbacks:
            cb.on_checkpoint(self.step, path)

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
        """Write atomically: a temporary file in the same folder, fsync, ``os.replace``, fsync the folder.

        A crash or a full disk at any point leaves the previous checkpoint whole; a failed write
        removes its temporary file and raises ``CheckpointWriteError`` naming the path.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                torch.save(self.state_dict(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise CheckpointWriteError(path, self.step, error) from error
        _fsync_dir(path.parent)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> Trainer:
        """A trainer rebuilt from the config stored in a checkpoint, with its state loaded."""
        from synflow.config import parse_run_config

        state = torch.load(path, map_location="cpu", weights_only=False)
        trainer = cls(parse_run_config(state["config"]), **kwargs)
        trainer.load_checkpoint(path)
        return trainer

    def load_checkpoint(self, path: str | Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.step = state["step"]
        self.model.load_state_dict(state["model"])
        self.sampling_model.load_state_dict(state["sampling_model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.replay.load_state_dict(state["replay"])
        self.metrics.load_state_dict(state["metrics"])
        self.trajectories_trained = state.get("trajectories_trained", 0)
        threads = state.get("torch_threads")
        if threads and self.device.type == "cpu" and threads != torch.get_num_threads():
            # Continue on the thread count the run was trained with, so a run resumed on another
            # worker (another machine, another OMP_NUM_THREADS) stays bit-identical on CPU.
            torch.set_num_threads(threads)
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        self.rng.bit_generator.state = rng["generator"]
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
