"""Preference conditioning over several reward components (multi-objective GFlowNets, Jain et al. 2023).

A preference-conditioned run draws per trajectory a weight vector w on the simplex over the run's
preference components (``RunConfig.preference_components``), gives it to the policy, and trains
towards R_w: the reward's aggregation with w in place of the configured weights. After training the
same network samples ∝ R_w at any w chosen then, without retraining.

numpy only (no torch): the API validates a sampling job's preference with ``preference_vector``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from synflow.config import ConfigError, RunConfig

__all__ = ["PreferenceSampler", "default_preference", "preference_dict", "preference_vector"]


def preference_vector(config: RunConfig, preference: Mapping[str, float] | None) -> np.ndarray | None:
    """``preference`` (component name → weight ≥ 0) as a vector on the simplex, in the order of
    ``config.preference_components``; components left out weigh 0. None for an unconditioned run.

    ``None`` on a conditioned run gives ``default_preference`` (the reward's configured weights).
    Raises ``ConfigError`` naming ``preference`` or ``preference.<name>``.
    """
    components = config.preference_components
    if components is None:
        if preference is not None:
            raise ConfigError(
                [("preference", "this run was not trained preference-conditioned (conditioning.preferences)")]
            )
        return None
    if preference is None:
        return default_preference(config)
    errors = [
        (f"preference.{name}", f"not a preference component of this run; components: {', '.join(components)}")
        for name in preference
        if name not in components
    ]
    errors += [
        (f"preference.{name}", f"weight must be a finite number ≥ 0 (got {weight})")
        for name, weight in preference.items()
        if name in components and not (np.isfinite(weight) and weight >= 0)
    ]
    if errors:
        raise ConfigError(errors)
    weights = np.array([float(preference.get(name, 0.0)) for name in components])
    if weights.sum() <= 0:
        raise ConfigError([("preference", "at least one weight of the run's components must be positive")])
    return weights / weights.sum()


def default_preference(config: RunConfig) -> np.ndarray:
    """The reward's configured weights of the preference components, normalised (uniform when they are
    all zero): what a conditioned run samples at when no preference is asked for."""
    components = config.preference_components or []
    by_name = {c.label: c.weight for c in config.reward.components}
    weights = np.array([by_name[name] for name in components], dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones(len(components))
    return weights / weights.sum()


def preference_dict(components: list[str], weights: np.ndarray) -> dict[str, float]:
    return {name: float(w) for name, w in zip(components, weights, strict=True)}


class PreferenceSampler:
    """Draws w ~ Dirichlet(α, …, α) per trajectory from the trainer's generator (seeded, resumable)."""

    def __init__(self, components: list[str], alpha: float) -> None:
        self.components = list(components)
        self.alpha = float(alpha)

    @property
    def dim(self) -> int:
        return len(self.components)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, dim) float64 weights, rows on the simplex."""
        return rng.dirichlet(np.full(self.dim, self.alpha), size=n)
