"""Trajectories: what the sampler produces, the replay buffer stores and the loss consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synflow.env import Action, State
from synflow.rewards import Reward, log_reward

__all__ = ["BackwardChoice", "Step", "Trajectory", "score_trajectories"]


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
    scored: bool = True  # False: the oracle budget ran out before this molecule was scored

    @property
    def n_reactions(self) -> int:
        return sum(1 for s in self.steps if s.action.kind in ("uni", "bi"))

    @property
    def uniform_log_pb(self) -> float:
        """Σ log P_B under the uniform backward policy over verified, reachable parents."""
        return -float(sum(np.log(len(b.parents)) for b in self.backward))


def score_trajectories(reward: Reward, trajs: list[Trajectory], floor: float) -> None:
    """Reward every valid molecule (log R = β log r, floored); one the budget left unscored gets
    ``scored = False``; invalid trajectories get the floor."""
    valid = [t for t in trajs if t.valid]
    batch = reward.score([t.smiles for t in valid if t.smiles is not None]) if valid else None
    for i, t in enumerate(valid):
        assert batch is not None
        t.scored = bool(batch.scored[i])
        t.reward = float(batch.reward[i])
        t.scores = {k: float(v[i]) for k, v in batch.scores.items()}
        t.reward_error = batch.errors[i] if batch.errors else None
        t.log_reward = float(log_reward([t.reward], t.beta, floor)[0])
    for t in trajs:
        if not t.valid:
            t.log_reward = floor
