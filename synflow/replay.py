"""Replay buffer of trajectories, unique by terminal SMILES, sampled uniformly, by reward or by rank."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import numpy as np

from synflow.trajectory import Trajectory

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """Keeps at most ``capacity`` valid trajectories, one per molecule.

    ``uniform``: first in, first out; draws uniformly. ``reward``: evicts the lowest reward and draws
    with probability proportional to the reward (plus a small floor so every entry stays drawable).
    ``rank``: evicts the lowest reward and draws the molecule of reward rank r (0 = best) of N with
    weight 1/(rank_k·N + r), as Genetic GFN and Tripp et al.'s rank-weighted training do: the best
    molecules dominate whatever the scale of the reward, and the weights do not flatten as the
    rewards of the pool converge.
    """

    def __init__(
        self,
        capacity: int,
        sampling: Literal["uniform", "reward", "rank"] = "uniform",
        rank_k: float = 0.01,
    ) -> None:
        self.capacity = capacity
        self.sampling = sampling
        self.rank_k = rank_k
        self._items: OrderedDict[str, Trajectory] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, trajectories: list[Trajectory]) -> None:
        for traj in trajectories:
            if not traj.valid or traj.smiles is None or traj.smiles in self._items or self.capacity == 0:
                continue
            self._items[traj.smiles] = traj
            if len(self._items) > self.capacity:
                self._evict()

    def _evict(self) -> None:
        if self.sampling == "uniform":
            self._items.popitem(last=False)
        else:
            worst = min(self._items, key=lambda s: self._items[s].reward)
            del self._items[worst]

    def __contains__(self, smiles: object) -> bool:
        return smiles in self._items

    def probabilities(self) -> tuple[list[Trajectory], np.ndarray]:
        """The stored trajectories (insertion order) and the probability of drawing each."""
        items = list(self._items.values())
        if not items:
            return items, np.zeros(0)
        if self.sampling == "uniform":
            weights = np.ones(len(items))
        elif self.sampling == "reward":
            weights = np.array([t.reward for t in items]) + 1e-3
        else:
            order = np.argsort(-np.array([t.reward for t in items]), kind="stable")
            ranks = np.empty(len(items))
            ranks[order] = np.arange(len(items))
            weights = 1.0 / (self.rank_k * len(items) + ranks)
        return items, weights / weights.sum()

    def sample(self, n: int, rng: np.random.Generator) -> list[Trajectory]:
        if n <= 0 or not self._items:
            return []
        items, p = self.probabilities()
        if self.sampling == "uniform":
            idx = rng.integers(len(items), size=n)
        else:
            idx = rng.choice(len(items), size=n, p=p)
        return [items[i] for i in idx]

    def state_dict(self) -> dict:
        return {"items": list(self._items.values())}

    def load_state_dict(self, state: dict) -> None:
        self._items = OrderedDict((t.smiles, t) for t in state["items"])
