"""The one contract between a Trainer and the outside world (the CLI, the service, the benchmarks).

A ``TrainerCallback`` hears about new molecules, every sample, metrics, progress and checkpoints,
and is asked ``should_stop()`` once per step. Implementations subclass it and override what they
need; every hook is a no-op by default. ``Trainer.run`` returns a ``TrainingOutcome`` saying why it
ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["STOP_MESSAGES", "SampledMolecule", "StopReason", "TrainerCallback", "TrainingOutcome"]

StopReason = Literal["completed", "budget_spent", "stopped"]
STOP_MESSAGES: dict[str, str] = {
    "completed": "all training steps done",
    "budget_spent": "oracle budget spent",
    "stopped": "stopped on request",
}


@dataclass(frozen=True)
class SampledMolecule:
    """A scored molecule with the route it was sampled by (DESIGN.md format) and the step."""

    smiles: str
    reward: float
    step: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    route: dict[str, Any] | None = None
    log_reward: float = 0.0
    beta: float = 1.0
    error: str | None = None  # why the reward could not be computed (the molecule got the floor)
    # what the reward's scorers found besides values (``Scorer.notes``): ``alerts``, ``purchasable``,
    # ``pose``; the store keeps these in columns of their own
    notes: dict[str, Any] = field(default_factory=dict)
    inchikey: str | None = None  # when the producer computed it (the store computes it otherwise)
    # packed ECFP4 (``reactions.similarity.packed_ecfp4_bytes``) when the producer computed it,
    # as for ``inchikey`` (the store computes it otherwise)
    fingerprint: bytes | None = None
    # preference-conditioned runs: the weights w (component → weight, summing to 1) the molecule was
    # sampled at and ``log_reward`` computed with; in JSON output, not in the store
    preference: dict[str, float] | None = None

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
            **({} if self.preference is None else {"preference": self.preference}),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class TrainingOutcome:
    """Why and where ``Trainer.run`` (or a sampling call) ended, with the last metrics."""

    reason: StopReason
    step: int
    metrics: dict[str, float]

    @property
    def message(self) -> str:
        return STOP_MESSAGES[self.reason]


class TrainerCallback:
    """Subclass and override what you need; every hook is a no-op by default."""

    def on_molecules(self, molecules: list[SampledMolecule]) -> None:
        """New unique molecules of one training step (or one sampling batch), each scored."""

    def on_samples(self, samples: list[SampledMolecule]) -> None:
        """Every scored molecule sampled in one step, new or seen before (one record per sample, so
        a molecule sampled twice appears twice): what counts ``times_sampled``."""

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Metrics every ``training.log_every`` steps and when the run ends."""

    def on_step(self, step: int, total: int, info: dict[str, float]) -> None:
        """A step finished (``info``: its loss, log Z, …; empty before the first step)."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """A checkpoint was written atomically at ``path``."""

    def should_stop(self) -> bool:
        """Asked before every step and before every checkpoint: True ends the run there."""
        return False
