"""What changes over a run's steps: learning rate, ε-exploration, α of the loss, and β per trajectory."""

from __future__ import annotations

import math

import numpy as np

from synflow.config import ConditioningConfig, LossConfig, TrainingConfig
from synflow.losses import AlphaSchedule, Divergence, divergence

__all__ = ["beta_range", "divergence_at", "exploration_at", "lr_factor", "sample_betas"]


def lr_factor(training: TrainingConfig, step: int) -> float:
    """The learning rate's multiplier at ``step``: linear warm-up, then constant, cosine or linear
    decay to 0.1 at ``training.steps``."""
    if training.warmup_steps and step < training.warmup_steps:
        return (step + 1) / training.warmup_steps
    frac = min(1.0, step / max(1, training.steps))
    if training.lr_schedule == "cosine":
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
    if training.lr_schedule == "linear":
        return 1.0 - 0.9 * frac
    return 1.0


def exploration_at(training: TrainingConfig, step: int) -> float:
    """ε at ``step``: constant, or linear from ``exploration`` to ``exploration_end``."""
    if training.exploration_end is None:
        return training.exploration
    frac = min(1.0, step / max(1, training.steps))
    return training.exploration + (training.exploration_end - training.exploration) * frac


def divergence_at(loss: LossConfig, step: int) -> Divergence:
    """The f-TB member at ``step`` (the α family may anneal α)."""
    if loss.divergence != "alpha":
        return divergence(loss.divergence)
    if loss.alpha_schedule is not None:
        s = loss.alpha_schedule
        return divergence("alpha", alpha=AlphaSchedule(s.start, s.end, s.steps, s.kind)(step))
    assert loss.alpha is not None  # RunConfig validation requires alpha or alpha_schedule
    return divergence("alpha", alpha=loss.alpha)


def beta_range(conditioning: ConditioningConfig, fixed_beta: float) -> tuple[float, float]:
    """The β the network is conditioned on: ``reward.beta`` unless a range is given."""
    return conditioning.beta_range or (fixed_beta, fixed_beta)


def sample_betas(bounds: tuple[float, float], n: int, rng: np.random.Generator) -> list[float]:
    """β per trajectory: the fixed value, or uniform in the range."""
    lo, hi = bounds
    if lo == hi:
        return [lo] * n
    return [float(b) for b in rng.uniform(lo, hi, size=n)]
