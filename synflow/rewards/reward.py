"""``Reward``: scores SMILES with a ``RewardConfig``, caches by canonical SMILES, counts oracle calls.

The top layer of ``synflow.rewards``: scorers come from ``factory.build_scorer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem

from reactions.smiles import parse_smiles_or_none
from synflow.rewards.base import Scorer
from synflow.rewards.components import ComponentBase
from synflow.rewards.config import RewardConfig
from synflow.rewards.docking import Executor
from synflow.rewards.errors import BudgetExhausted, RewardPluginError
from synflow.rewards.factory import LOCAL, Placement, build_scorer
from synflow.rewards.results import RewardBatch, log_reward


@dataclass
class _Component:
    config: ComponentBase
    scorer: Scorer
    name: str
    keep_raw: bool

    def evaluate(
        self, mols: list[Chem.Mol], smiles: list[str]
    ) -> tuple[dict[str, np.ndarray], list[str | None], list[dict[str, Any]]]:
        """Columns of this component, per molecule the reason it could not be scored, and its notes."""
        values, errors = self.scorer.score_with_errors(mols, smiles)
        notes = self.scorer.notes(smiles)
        raw = np.asarray(values, dtype=np.float64)
        failed = np.array([e is not None for e in errors], dtype=bool)
        transform = self.config.effective_transform()
        shaped = raw if transform is None else transform.apply(raw)
        outside = ((raw < -1e-9) | (raw > 1 + 1e-9)) & ~failed
        if transform is None and np.any(outside):
            bad = float(raw[outside][0])
            raise RewardPluginError(self.name, f"returned {bad} outside [0, 1]; add a transform")
        score = np.nan_to_num(np.clip(shaped, 0.0, 1.0), nan=0.0)
        out = {self.name: np.where(failed, np.nan, score)}
        if self.keep_raw:
            out[f"{self.name}_raw"] = raw
        return out, [None if e is None else f"{self.name}: {e}" for e in errors], notes


@dataclass
class _Entry:
    reward: float
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # what scorers found besides values


class Reward:
    """A built reward definition. Not thread-safe; one per trainer or scoring job.

    ``score`` parses and canonicalises SMILES, looks each canonical SMILES up in its cache and scores
    only new molecules (those count as oracle calls, up to ``budget``). Invalid SMILES score 0 and
    are not oracle calls. ``close()`` (or ``with``) stops the docking workers or actors, if any.
    ``placement``: where docking runs (local processes by default, or Ray actors).
    """

    def __init__(self, config: RewardConfig, placement: Placement = LOCAL) -> None:
        self.config = config
        self.placement = placement
        self._components = [_build(c, placement) for c in config.components]
        self._cache: dict[str, _Entry] = {}
        self.oracle_calls = 0

    @property
    def names(self) -> list[str]:
        """Every key a batch's ``scores`` has, in order."""
        keys: list[str] = []
        for c in self._components:
            keys += [c.name, f"{c.name}_raw"] if c.keep_raw else [c.name]
        return keys

    def scorer(self, name: str) -> Scorer:
        """The scorer of the component called ``name`` (e.g. to read ``DockingScorer.failures``)."""
        for component in self._components:
            if component.name == name:
                return component.scorer
        raise KeyError(f"no component named {name!r}; components: {', '.join(self.config.names)}")

    @property
    def budget_left(self) -> int | None:
        return None if self.config.budget is None else max(0, self.config.budget - self.oracle_calls)

    @property
    def exhausted(self) -> bool:
        return self.budget_left == 0

    def log_reward(self, rewards: np.ndarray | Sequence[float]) -> np.ndarray:
        return log_reward(rewards, self.config.beta, self.config.log_reward_floor)

    def score(self, smiles: Sequence[str], *, raise_on_budget: bool = False) -> RewardBatch:
        """Score a batch; ``raise_on_budget`` raises ``BudgetExhausted`` (with the partial batch)
        when some new molecule was left unscored."""
        smiles = list(smiles)
        parsed = [_canonical(s) for s in smiles]
        canonical = [None if p is None else p[0] for p in parsed]
        # descriptors and fingerprints do not depend on atom order, so the parsed input is scored
        mols = {c: m for c, m in filter(None, parsed) if c not in self._cache}
        new = list(mols)
        left = self.budget_left
        allowed = new if left is None else new[:left]
        self._score_new(allowed, [mols[c] for c in allowed])
        batch = self._assemble(smiles, canonical, truncated=len(allowed) < len(new))
        if raise_on_budget and batch.budget_exhausted:
            raise BudgetExhausted(self.config.budget or 0, batch)
        return batch

    def _score_new(self, canonical: list[str], mols: list[Chem.Mol]) -> None:
        if not canonical:
            return
        columns: dict[str, np.ndarray] = {}
        errors: list[str | None] = [None] * len(canonical)
        notes: list[dict[str, Any]] = [{} for _ in canonical]
        for component in self._components:
            values, failures, found = component.evaluate(mols, canonical)
            columns.update(values)
            errors = [a if a is not None else b for a, b in zip(errors, failures, strict=True)]
            for mine, theirs in zip(notes, found, strict=True):
                mine.update(theirs)
        # a molecule a plugin failed on gets the floor, not a reward from its other components
        rewards = np.where(
            [e is not None for e in errors],
            0.0,
            self._aggregate({k: np.nan_to_num(v, nan=0.0) for k, v in columns.items()}),
        )
        for i, s in enumerate(canonical):
            scores = {k: float(v[i]) for k, v in columns.items()}
            self._cache[s] = _Entry(float(rewards[i]), scores, errors[i], notes[i])
        self.oracle_calls += len(canonical)

    def aggregate(self, scores: Mapping[str, Any], weights: Mapping[str, float]) -> np.ndarray:
        """The reward of already-scored molecules with ``weights`` (score component name → weight ≥ 0,
        not all zero; score components left out weigh 0) instead of the configured weights: the same
        weighted mean, then the filters. ``scores``: a batch's or an entry's per-component scores
        (arrays or floats). No oracle call: preference-conditioned training uses it per trajectory.
        A molecule a plugin failed on must still get 0 (its error is not in ``scores``)."""
        columns = {k: np.nan_to_num(np.atleast_1d(np.asarray(v, dtype=np.float64)), nan=0.0)
                   for k, v in scores.items()}
        scored = [c.name for c in self._components if c.config.role == "score"]
        unknown = sorted(set(weights) - set(scored))
        if unknown:
            raise KeyError(
                f"not score components: {', '.join(unknown)}; score components: {', '.join(scored)}"
            )
        if scored and not any(weights.get(name, 0.0) > 0 for name in scored):
            raise ValueError("the weights of the score components sum to zero")
        return self._aggregate(columns, weights)

    def _aggregate(
        self, columns: dict[str, np.ndarray], preference: Mapping[str, float] | None = None
    ) -> np.ndarray:
        n = len(next(iter(columns.values())))
        scored = [c for c in self._components if c.config.role == "score"]
        reward = np.ones(n)
        if scored:
            if preference is None:
                weights = np.array([c.config.weight for c in scored])
            else:
                weights = np.array([float(preference.get(c.name, 0.0)) for c in scored])
            matrix = np.stack([columns[c.name] for c in scored], axis=1)
            reward = _weighted_mean(matrix, weights / weights.sum(), self.config.aggregation)
        for c in self._components:
            if c.config.role == "filter":
                reward = reward * columns[c.name]
        return np.clip(reward, 0.0, 1.0)

    def _assemble(self, smiles: list[str], canonical: list[str | None], truncated: bool) -> RewardBatch:
        entries = [self._cache.get(c) if c is not None else None for c in canonical]
        nan_or_zero = {k: (np.nan if k.endswith("_raw") else 0.0) for k in self.names}
        return RewardBatch(
            smiles=smiles,
            canonical_smiles=canonical,
            reward=np.array([e.reward if e else 0.0 for e in entries]),
            scores={k: np.array([e.scores[k] if e else nan_or_zero[k] for e in entries]) for k in self.names},
            valid=np.array([c is not None for c in canonical], dtype=bool),
            scored=np.array([e is not None or c is None for e, c in zip(entries, canonical, strict=True)]),
            errors=[e.error if e else None for e in entries],
            notes=[e.notes if e else {} for e in entries],
            budget_exhausted=truncated
            or (
                self.exhausted
                and any(e is None and c is not None for e, c in zip(entries, canonical, strict=True))
            ),
        )

    def state_dict(self) -> dict[str, Any]:
        """The scored molecules (cache) and the oracle-call count, so a resumed run keeps its budget."""
        return {
            "oracle_calls": self.oracle_calls,
            "cache": {s: (e.reward, e.scores, e.error, e.notes) for s, e in self._cache.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.oracle_calls = int(state["oracle_calls"])
        # checkpoints written before notes existed hold (reward, scores, error)
        self._cache = {
            s: _Entry(entry[0], dict(entry[1]), entry[2], dict(entry[3]) if len(entry) > 3 else {})
            for s, entry in state["cache"].items()
        }

    def close(self) -> None:
        for component in self._components:
            component.scorer.close()

    def __enter__(self) -> Reward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _weighted_mean(matrix: np.ndarray, weights: np.ndarray, kind: str) -> np.ndarray:
    if kind == "arithmetic":
        return matrix @ weights
    with np.errstate(divide="ignore"):
        logs = np.log(matrix)
    # a zero score with positive weight zeroes the product; one with zero weight is ignored
    logs = np.where(weights[None, :] > 0, logs, 0.0)
    return np.exp(np.sum(logs * weights[None, :], axis=1))


def _canonical(smiles: str) -> tuple[str, Chem.Mol] | None:
    """(canonical SMILES, molecule), or None for invalid SMILES (they score 0: not an error)."""
    mol = parse_smiles_or_none(smiles)
    return None if mol is None else (Chem.MolToSmiles(mol), mol)


def _build(config: ComponentBase, placement: Placement) -> _Component:
    keep_raw = (not config.bounded) or config.effective_transform() is not None
    scorer = build_scorer(config, placement)
    return _Component(config=config, scorer=scorer, name=config.label, keep_raw=keep_raw)


def build_reward(
    config: RewardConfig, *, executor: Executor = "local", ray_address: str | None = None
) -> Reward:
    """Build the scorers of a reward definition (docking workers start on first use).

    ``executor="ray"`` docks on Ray actors (one per ``processes`` of each docking component) on the
    cluster at ``ray_address``, or on a local Ray instance when it is None; a Ray instance this
    process has already joined (e.g. the trainer's) is reused. Same affinities as ``"local"``.
    """
    return Reward(config, Placement(executor, ray_address))
