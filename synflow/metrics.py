"""Generation metrics: top-k rewards, unique molecules, modes, scaffolds, diversity, PMO AUC, routes."""

from __future__ import annotations

from collections import Counter

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

__all__ = ["MetricsTracker", "mean_pairwise_similarity", "murcko_scaffold", "pmo_auc_top_k"]


def _fingerprint(smiles: str) -> DataStructs.ExplicitBitVect:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    return generator.GetFingerprint(Chem.MolFromSmiles(smiles))


def murcko_scaffold(smiles: str) -> str:
    """The Bemis–Murcko scaffold's SMILES ("" for an acyclic molecule)."""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=Chem.MolFromSmiles(smiles))


def mean_pairwise_similarity(smiles: list[str]) -> float:
    """Mean Tanimoto similarity over distinct pairs (1 − this is the usual diversity)."""
    if len(smiles) < 2:
        return float("nan")
    fps = [_fingerprint(s) for s in smiles]
    total = 0.0
    for i in range(1, len(fps)):
        total += sum(DataStructs.BulkTanimotoSimilarity(fps[i], fps[:i]))
    return total / (len(fps) * (len(fps) - 1) / 2)


def pmo_auc_top_k(
    rewards: list[float], k: int = 10, freq: int = 100, max_calls: int = 10_000, finish: bool = True
) -> float:
    """PMO's AUC of the mean top-k reward over oracle calls (``rewards`` in call order).

    The same computation as the PMO benchmark's ``top_auc``: the mean of the top k is logged every
    ``freq`` calls, integrated with the trapezoid rule, continued flat to ``max_calls`` when the run
    stopped early (``finish``), and divided by ``max_calls``.
    """
    rewards = rewards[:max_calls]
    total, prev, called = 0.0, 0.0, 0
    for idx in range(freq, min(len(rewards), max_calls), freq):
        now = float(np.mean(sorted(rewards[:idx], reverse=True)[:k]))
        total += freq * (now + prev) / 2
        prev, called = now, idx
    now = float(np.mean(sorted(rewards, reverse=True)[:k])) if rewards else 0.0
    total += (len(rewards) - called) * (now + prev) / 2
    if finish and len(rewards) < max_calls:
        total += (max_calls - len(rewards)) * now
    return total / max_calls


class MetricsTracker:
    """Accumulates every unique molecule of a run and summarises them."""

    def __init__(self, mode_threshold: float = 0.9, mode_similarity: float = 0.5) -> None:
        self.mode_threshold = mode_threshold
        self.mode_similarity = mode_similarity
        self.rewards: dict[str, float] = {}  # unique molecules in first-seen (oracle call) order
        self.modes: list[str] = []
        self._mode_fps: list[DataStructs.ExplicitBitVect] = []
        self.scaffolds: set[str] = set()
        self.route_lengths: Counter[int] = Counter()
        self.sampled = 0
        self.invalid = 0

    def update(self, smiles: str | None, reward: float, n_reactions: int) -> bool:
        """Record one sampled trajectory's outcome; returns True when the molecule is new."""
        self.sampled += 1
        if smiles is None:
            self.invalid += 1
            return False
        self.route_lengths[n_reactions] += 1
        if smiles in self.rewards:
            return False
        self.rewards[smiles] = reward
        self.scaffolds.add(murcko_scaffold(smiles))
        if reward >= self.mode_threshold:
            fp = _fingerprint(smiles)
            sims = DataStructs.BulkTanimotoSimilarity(fp, self._mode_fps) if self._mode_fps else []
            if all(s < self.mode_similarity for s in sims):
                self.modes.append(smiles)
                self._mode_fps.append(fp)
        return True

    def top(self, k: int) -> list[str]:
        return sorted(self.rewards, key=self.rewards.__getitem__, reverse=True)[:k]

    def summary(self, diversity: bool = True) -> dict[str, float]:
        values = sorted(self.rewards.values(), reverse=True)
        out: dict[str, float] = {
            "unique": len(values),
            "modes": len(self.modes),
            "scaffolds": len(self.scaffolds),
            "sampled": self.sampled,
            "invalid_fraction": self.invalid / max(1, self.sampled),
        }
        for k in (1, 10, 100):
            out[f"top{k}_reward"] = float(np.mean(values[:k])) if values else 0.0
        out["pmo_auc_top10"] = pmo_auc_top_k(list(self.rewards.values()))
        if diversity:
            out["top100_diversity"] = 1.0 - mean_pairwise_similarity(self.top(100))
        total = sum(self.route_lengths.values())
        for n, c in sorted(self.route_lengths.items()):
            out[f"route_len_{n}"] = c / total
        return out

    def state_dict(self) -> dict:
        return {
            "rewards": dict(self.rewards),
            "modes": list(self.modes),
            "scaffolds": set(self.scaffolds),
            "route_lengths": Counter(self.route_lengths),
            "sampled": self.sampled,
            "invalid": self.invalid,
        }

    def load_state_dict(self, state: dict) -> None:
        self.rewards = dict(state["rewards"])
        self.modes = list(state["modes"])
        self._mode_fps = [_fingerprint(s) for s in self.modes]
        self.scaffolds = set(state["scaffolds"])
        self.route_lengths = Counter(state["route_lengths"])
        self.sampled, self.invalid = state["sampled"], state["invalid"]
