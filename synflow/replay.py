"""Replay buffer of trajectories, unique by terminal SMILES, sampled uniformly or by reward."""

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
    """

    def __init__(self, capacity: int, sampling: Literal["uniform", "reward"] = "uniform") -> None:
        self.capacity = capacity
        self.sampling = sampling
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

    def sample(self, n: int, rng: np.random.Generator) -> list[Trajectory]:
        if n <= 0 or not self._items:
            return []
        items = list(self._items.values())
        if self.sampling == "uniform":
            idx = rng.integers(len(items), size=n)
        else:
            weights = np.array([t.reward for t in items]) + 1e-3
            idx = rng.choice(len(items), size=n, p=weights / weights.sum())
        return [items[i] for i in idx]

    def state_dict(self) -> dict:
        return {"items": list(self._items.values())}

    def load_state_dict(self, state: dict) -> None:
        self._items = OrderedDict((t.smiles, t) for t in state["items"])
