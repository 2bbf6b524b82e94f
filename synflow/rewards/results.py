"""What scoring returns: ``MoleculeScore``, ``RewardBatch``, and the GFlowNet target ``log_reward``.

The bottom layer of ``synflow.rewards``: numpy only, no other module of the package.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

# log R = max(beta * log r, floor). -75 keeps exp(log R) and exp(±Δ) in float32 range (e^-88 is
# float32's smallest normal) and bounds the residual of molecules with r = 0.
DEFAULT_LOG_REWARD_FLOOR = -75.0


def log_reward(r: np.ndarray | Sequence[float], beta: float = 1.0,
               floor: float = DEFAULT_LOG_REWARD_FLOOR) -> np.ndarray:
    """log R = max(β · log r, floor): r = 0 maps to ``floor`` instead of -inf."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.maximum(beta * np.log(np.clip(r, 0.0, 1.0)), floor)


@dataclass(frozen=True)
class MoleculeScore:
    """One molecule's result: the aggregated reward, the per-component scores and raw values."""

    smiles: str
    canonical_smiles: str | None
    reward: float
    scores: dict[str, float]
    valid: bool
    scored: bool = True
    error: str | None = None
    notes: dict[str, object] = field(default_factory=dict)  # see ``Scorer.notes``

    def to_json(self) -> dict[str, object]:
        def clean(v: float) -> float | None:
            return None if np.isnan(v) else v

        out: dict[str, object] = {
            "smiles": self.smiles, "canonical_smiles": self.canonical_smiles, "reward": self.reward,
            "scores": {k: clean(v) for k, v in self.scores.items()}, "valid": self.valid,
            "scored": self.scored,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.notes:
            out["notes"] = self.notes
        return out


@dataclass(frozen=True)
class RewardBatch:
    """Results for a batch, in input order.

    ``reward`` in [0, 1]; ``scores[name]`` each component's shaped score in [0, 1] and, for
    components with a transform or unbounded raw values, ``scores[name + "_raw"]`` (e.g. the docking
    affinity in kcal/mol; NaN where it could not be computed). ``valid``: the SMILES parsed.
    ``scored``: False for molecules left unscored because the budget ran out (reward 0).
    ``errors``: why a plugin could not score a molecule (reward 0, the failing component's score
    NaN), None for the rest.
    """

    smiles: list[str]
    canonical_smiles: list[str | None]
    reward: np.ndarray
    scores: dict[str, np.ndarray]
    valid: np.ndarray
    scored: np.ndarray
    budget_exhausted: bool = False
    errors: list[str | None] = field(default_factory=list)
    notes: list[dict[str, object]] = field(default_factory=list)  # per molecule, ``Scorer.notes``

    def __len__(self) -> int:
        return len(self.smiles)

    def __getitem__(self, i: int) -> MoleculeScore:
        return MoleculeScore(
            smiles=self.smiles[i], canonical_smiles=self.canonical_smiles[i],
            reward=float(self.reward[i]), scores={k: float(v[i]) for k, v in self.scores.items()},
            valid=bool(self.valid[i]), scored=bool(self.scored[i]),
            error=self.errors[i] if self.errors else None,
            notes=self.notes[i] if self.notes else {},
        )

    def __iter__(self) -> Iterator[MoleculeScore]:
        return (self[i] for i in range(len(self)))

    def log_reward(self, beta: float = 1.0, floor: float = DEFAULT_LOG_REWARD_FLOOR) -> np.ndarray:
        return log_reward(self.reward, beta, floor)
