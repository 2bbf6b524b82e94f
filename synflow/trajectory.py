"""Trajectories: what the sampler produces, the replay buffer stores and the loss consumes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synflow.env import Action, State
from synflow.rewards import Reward, log_reward

__all__ = [
    "BackwardChoice",
    "Step",
    "Trajectory",
    "score_trajectories",
    "target_reward",
    "with_preference",
]


@dataclass(slots=True)
class Step:
    """One forward decision: the state, the action taken and what the policy chose among."""

    state: State
    action: Action
    level1: tuple[int, ...] = ()  # legal level-1 indices (molecule states)
    candidates: np.ndarray | None = None  # blocks offered at level 2 (a subsample of n_total)
    n_total: int = 0


@dataclass(slots=True)
class BackwardChoice:
    """One backward decision: the child, its parents (states, plus the forward action), the one taken."""

    child: State
    parents: list[tuple[State, Action | None]]
    chosen: int


@dataclass(slots=True)
class Trajectory:
    steps: list[Step]
    beta: float
    valid: bool
    smiles: str | None  # the terminal molecule (None when invalid)
    route: list[dict]
    backward: list[BackwardChoice] = field(default_factory=list)
    log_reward: float = 0.0
    reward: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    reward_error: str | None = None  # a reward plugin failed on this molecule (reward 0, log R floor)
    reward_notes: dict[str, Any] = field(default_factory=dict)  # ``Scorer.notes`` (alerts, pose, ...)
    scored: bool = True  # False: the oracle budget ran out before this molecule was scored
    # preference-conditioned runs: the weights w (over ``RunConfig.preference_components``) the policy
    # was conditioned on and ``log_reward`` is computed with (R_w); ``reward`` stays the configured one
    preference: tuple[float, ...] | None = None

    def __setstate__(self, state: Any) -> None:
        """Unpickling (replay buffers in checkpoints): a field added since the checkpoint was written
        takes its default, so older checkpoints still resume."""
        slots = state[1] if isinstance(state, tuple) else state
        for f in dataclasses.fields(self):
            if f.name in slots:
                setattr(self, f.name, slots[f.name])
            elif f.default is not dataclasses.MISSING:
                setattr(self, f.name, f.default)
            elif f.default_factory is not dataclasses.MISSING:
                setattr(self, f.name, f.default_factory())

    @property
    def n_reactions(self) -> int:
        return sum(1 for s in self.steps if s.action.kind in ("uni", "bi"))

    @property
    def uniform_log_pb(self) -> float:
        """Σ log P_B under the uniform backward policy over verified, reachable parents."""
        return -float(sum(np.log(len(b.parents)) for b in self.backward))


def score_trajectories(
    reward: Reward, trajs: list[Trajectory], floor: float, components: Sequence[str] | None = None
) -> None:
    """Reward every valid molecule (log R = β log r, floored); one the budget left unscored gets
    ``scored = False``; invalid trajectories get the floor. A trajectory with a ``preference`` gets
    log R = β log R_w (``components``: the run's preference components, the order of w)."""
    valid = [t for t in trajs if t.valid]
    batch = reward.score([t.smiles for t in valid if t.smiles is not None]) if valid else None
    for i, t in enumerate(valid):
        assert batch is not None
        t.scored = bool(batch.scored[i])
        t.reward = float(batch.reward[i])
        t.scores = {k: float(v[i]) for k, v in batch.scores.items()}
        t.reward_error = batch.errors[i] if batch.errors else None
        t.reward_notes = batch.notes[i] if batch.notes else {}
        t.log_reward = float(log_reward([target_reward(reward, t, components)], t.beta, floor)[0])
    for t in trajs:
        if not t.valid:
            t.log_reward = floor


def target_reward(reward: Reward, traj: Trajectory, components: Sequence[str] | None) -> float:
    """The reward a scored trajectory trains towards: the molecule's reward, or with a preference w
    the reward's aggregation with w (from the cached per-component scores: no oracle call)."""
    if traj.preference is None:
        return traj.reward
    if traj.reward_error is not None:  # a failed plugin gives the floor whatever the weights
        return 0.0
    if components is None:
        raise ValueError("a trajectory with a preference needs the run's preference components")
    weights = dict(zip(components, traj.preference, strict=True))
    return float(reward.aggregate(traj.scores, weights)[0])


def with_preference(
    reward: Reward,
    traj: Trajectory,
    preference: tuple[float, ...],
    floor: float,
    components: Sequence[str],
) -> Trajectory:
    """A copy of a scored trajectory conditioned on ``preference``, its log R recomputed for it (the
    original, e.g. a replay buffer's entry, is left as it is)."""
    out = dataclasses.replace(traj, preference=preference)
    if out.valid and out.scored:
        out.log_reward = float(log_reward([target_reward(reward, out, components)], out.beta, floor)[0])
    return out
