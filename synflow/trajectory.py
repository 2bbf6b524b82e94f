"""Trajectories: what the sampler produces, the replay buffer stores and the loss consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synflow.env import Action, State

__all__ = ["BackwardChoice", "Step", "Trajectory"]


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
