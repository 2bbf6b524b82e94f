"""What a Trainer tells the outside world: new molecules, metrics, checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MoleculeRecord", "TrainerCallback"]


@dataclass(frozen=True)
class MoleculeRecord:
    """A sampled molecule with the route it was sampled by (DESIGN.md format) and the step."""

    smiles: str
    reward: float
    scores: dict[str, float]
    route: dict[str, Any]
    step: int
    log_reward: float
    beta: float
    error: str | None = None  # why the reward could not be computed (the molecule got the floor)

    def to_json(self) -> dict[str, Any]:
        return {
            "smiles": self.smiles,
            "reward": self.reward,
            "scores": self.scores,
            "route": self.route,
            "step": self.step,
            "log_reward": self.log_reward,
            "beta": self.beta,
            "error": self.error,
        }


class TrainerCallback:
    """Subclass and override what you need; every hook is a no-op by default."""

    def on_molecules(self, records: list[MoleculeRecord]) -> None:
        """New unique molecules of one training step (or one sampling call)."""

    def on_samples(self, records: list[MoleculeRecord]) -> None:
        """Every valid molecule sampled in one training step, new or seen before (one record per
        sample, so a molecule sampled twice appears twice): what counts ``times_sampled``."""

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Metrics every ``training.log_every`` steps and at the end."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """A checkpoint was written atomically at ``path``."""
