"""``RunConfig``: the one typed description of a SynFlowNet run (JSON or TOML, API and CLI alike).

Every section forbids unknown keys, so a typo is an error that names its field path
(``loss.divergance: Extra inputs are not permitted``) instead of a silently ignored setting.
Validating a RunConfig imports neither torch nor the trainer: the API validates requests with it.

A top-level ``preset`` fills in the values of a recipe; keys given explicitly override it:

* ``sample`` (also what no preset means): the trained sampler draws molecules exactly ∝ R — the
  uniform backward policy over verified parents, a learned log Z, and every compatible building
  block in the block softmax (no subsampling).
* ``optimise``: the best sample-efficiency recipe the project knows (PMO benchmark settings): the
  route backward policy (P_B = 1, so molecules are drawn ∝ R × number of routes), k = 64 blocks
  subsampled per choice (approximate), β = 32, α annealed 0.75 → 1.2, ε = 0.05, rank-weighted replay
  of the best 1,024 molecules with 8 f-TB updates per batch, and per step 32 genetic offspring of the
  replay pool and 8 local-search regrowths (``search``), scored under the same budget.

The stored config of a run is the resolved one (preset values written out), so a later change to a
preset never changes a stored run.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from synflow.rewards import RewardConfig
from synflow.rewards.components import Smarts

__all__ = [
    "DIVERGENCE_NAMES",
    "PRESETS",
    "PRESET_DESCRIPTIONS",
    "ConditioningConfig",
    "ConfigError",
    "EnvironmentConfig",
    "GeneticConfig",
    "LocalSearchConfig",
    "LossConfig",
    "MetricsConfig",
    "ModelConfig",
    "PreferenceConfig",
    "ReplayConfig",
    "RunConfig",
    "SamplingConfig",
    "ScheduleConfig",
    "SearchConfig",
    "TrainingConfig",
    "load_run_config",
    "merge_config",
    "parse_run_config",
    "parse_sampling_config",
]

# The members of the f-TB family (``synflow.losses.divergence_names()``; a test keeps them equal).
DivergenceName = Literal["reverse_kl", "forward_kl", "pearson", "neyman", "hellinger", "js", "tv", "alpha"]
DIVERGENCE_NAMES: tuple[str, ...] = get_args(DivergenceName)
PresetName = Literal["sample", "optimise"]

PRESETS: dict[str, dict[str, Any]] = {
    "sample": {
        "environment": {"backward_policy": "uniform", "blocks_per_template": None},
        "loss": {"log_z": "learned"},
    },
    "optimise": {
        "reward": {"beta": 32.0},
        "loss": {"divergence": "alpha", "alpha_schedule": {"start": 0.75, "end": 1.2, "steps": 300}},
        "environment": {"backward_policy": "route", "blocks_per_template": 64, "max_reactions": 3},
        "model": {"hidden": 64, "layers": 2, "block_hidden": 128},
        "replay": {"fraction": 0.25, "sampling": "rank", "capacity": 1024},
        "search": {"genetic": {"offspring": 32}, "local": {"candidates": 8}},
        "training": {"batch_size": 64, "lr": 1e-3, "exploration": 0.05, "inner_steps": 8},
    },
}


PRESET_DESCRIPTIONS: dict[str, str] = {
    "sample": "exact sampling: after training, molecules are drawn in proportion to the reward "
    "(uniform backward policy over retro-verified parents, every compatible block in the block "
    "choice); slower per step, as every molecule is retro-analysed. Also what no preset means.",
    "optimise": "sample efficiency: the best molecules for a limited number of oracle calls (route "
    "backward policy, 64 blocks subsampled per choice, beta 32, alpha annealed 0.75 to 1.2, "
    "rank-weighted replay of the best 1,024 molecules with 8 updates per batch, 32 genetic offspring "
    "and 8 local-search regrowths per step, epsilon 0.05); molecules are drawn in proportion to reward "
    "times their number of routes. The PMO benchmark's recipe; it changes as that work improves it.",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleConfig(_Section):
    """α over training steps (see ``synflow.losses.AlphaSchedule``)."""

    start: float
    end: float | None = None
    steps: int = Field(1, ge=1)
    kind: Literal["constant", "linear", "cosine"] = "linear"


class LossConfig(_Section):
    divergence: DivergenceName = "reverse_kl"
    alpha: float | None = Field(None, description="α for divergence='alpha' (constant)")
    alpha_schedule: ScheduleConfig | None = Field(None, description="annealed α (divergence='alpha')")
    log_z: Literal["learned", "devgrad"] = "learned"
    log_z_lr: float = Field(0.05, gt=0)
    temper: float | None = Field(None, gt=0)
    backward_policy_weight: float = Field(1.0, ge=0, description="weight of −log P_B (maximum_likelihood)")
    dead_end_weight: float = Field(
        0.1,
        ge=0,
        description="λ of the dead-end term λ·P(dead end) (constrained runs; see synflow/constraints.py): "
        "steers the sampler away from states with no legal action; 0 leaves them untrained",
    )

    @model_validator(mode="after")
    def _check_alpha(self) -> LossConfig:
        if self.divergence == "alpha" and self.alpha is None and self.alpha_schedule is None:
            raise ValueError("divergence 'alpha' needs loss.alpha or loss.alpha_schedule")
        return self


def _start_block_entry(entry: str) -> str:
    """One building block of ``environment.start_blocks``: a catalogue ID or a SMILES (which one, and
    whether the library has it, is known only when the run's library is loaded)."""
    text = entry.strip()
    if not text:
        raise ValueError("must be a building block's catalogue ID or SMILES, not empty")
    if len(text) > 1000 or any(c.isspace() for c in text):
        raise ValueError(
            f"{text[:80]!r} is not one catalogue ID or SMILES (at most 1000 characters, no spaces)"
        )
    return text


StartBlockEntry = Annotated[str, AfterValidator(_start_block_entry)]


class EnvironmentConfig(_Section):
    max_reactions: int = Field(3, ge=1, le=6)
    min_reactions: int = Field(1, ge=0)
    building_blocks: Path | None = Field(None, description="SMILES file; None = the bundled default library")
    templates: Path | None = Field(None, description="SMARTS file; None = the bundled default templates")
    cache_dir: Path | None = None
    backward_policy: Literal["uniform", "maximum_likelihood", "route"] = Field(
        "uniform",
        description="uniform (exact p ∝ R), maximum_likelihood (learned), route (P_B = 1: fastest, "
        "samples ∝ R × number of routes; see synflow/env.py)",
    )
    blocks_per_template: int | None = Field(
        None,
        ge=1,
        description="None: the block softmax runs over every compatible block (exact). k: k blocks "
        "subsampled per choice (approximate: faster on large libraries, but the optimum is no longer ∝ R)",
    )
    start_blocks: list[StartBlockEntry] | None = Field(
        None,
        min_length=1,
        max_length=100_000,
        description="constrained starts: every route begins with one of these building blocks (catalogue "
        "IDs or SMILES of the run's library; checked against it when the run is built). None: any block",
    )
    scaffold: Smarts | None = Field(
        None,
        description="constrained products: SMARTS every final molecule contains (stop is masked in "
        "states whose molecule lacks it; see synflow/constraints.py). None: no scaffold",
    )

    @model_validator(mode="after")
    def _check_range(self) -> EnvironmentConfig:
        if self.min_reactions > self.max_reactions:
            raise ValueError("min_reactions must not exceed max_reactions")
        return self


class PreferenceConfig(_Section):
    """Preference conditioning (multi-objective GFlowNets, Jain et al. 2023): per trajectory a weight
    vector w ~ Dirichlet(α) over ``components`` is drawn and given to the policy, and the trajectory's
    reward is the reward's aggregation with w in place of the configured weights (score components
    not listed weigh 0; filters still multiply). After training, sampling at any w draws ∝ R_w."""

    components: list[str] | None = Field(
        None, description="score components the preference spans (None: every score component)"
    )
    dirichlet_alpha: float = Field(
        1.0, gt=0, description="w ~ Dirichlet(α, …, α) per trajectory; 1 is uniform on the simplex"
    )


class ConditioningConfig(_Section):
    """β conditioning: fixed (``reward.beta``) unless ``beta_range`` is given, then β ~ U(range);
    ``preferences``: a weight vector over the reward's score components drawn per trajectory."""

    beta_range: tuple[float, float] | None = None
    thermometer_bins: int = Field(16, ge=2)
    preferences: PreferenceConfig | None = Field(
        None, description="train preference-conditioned over several reward components (None: off)"
    )


class ModelConfig(_Section):
    hidden: int = Field(128, ge=8)
    layers: int = Field(3, ge=1)
    conv: Literal["gine", "gatv2"] = "gine"
    block_hidden: int = Field(256, ge=8)


class ReplayConfig(_Section):
    capacity: int = Field(
        5000, ge=0, description="molecules kept (the pool replay and genetic search draw from)"
    )
    fraction: float = Field(0.0, ge=0, lt=1, description="share of each batch drawn from replay")
    sampling: Literal["uniform", "reward", "rank"] = Field(
        "uniform",
        description="uniform (first in, first out); reward (∝ R, the lowest reward evicted); rank "
        "(weight 1/(rank_k·N + rank) by reward rank, the lowest reward evicted: Genetic GFN's weighting)",
    )
    rank_k: float = Field(0.01, gt=0, description="k of the rank weights 1/(k·N + rank)")
    warmup: int = Field(64, ge=0, description="trajectories stored before replay is used")


class GeneticConfig(_Section):
    """Genetic search on routes (``synflow.genetic``): offspring of the best molecules seen, made by
    editing their routes and replaying them through the chemistry; scored under the same budget."""

    offspring: int = Field(0, ge=0, description="new molecules per training step (0: off)")
    crossover: float = Field(0.5, ge=0, le=1, description="share of offspring made by crossover")
    neighbours: int = Field(16, ge=1, description="most similar compatible blocks a leaf swap picks from")
    attempts: int = Field(8, ge=1, description="tries per offspring before giving up")


class LocalSearchConfig(_Section):
    """Local search in the MDP (``synflow.local_search``, LS-GFN): undo the last reactions of good
    trajectories, regrow them with the policy, keep a regrown molecule when its reward is higher."""

    candidates: int = Field(0, ge=0, description="trajectories backtracked and regrown per step (0: off)")
    backtrack: int = Field(1, ge=1, description="reactions undone before regrowing")


class SearchConfig(_Section):
    genetic: GeneticConfig = Field(default_factory=GeneticConfig)
    local: LocalSearchConfig = Field(default_factory=LocalSearchConfig)


class TrainingConfig(_Section):
    steps: int = Field(1000, ge=0)
    batch_size: int = Field(64, ge=1)
    seed: int = 0
    device: str = "auto"
    lr: float = Field(1e-3, gt=0)
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float | None = Field(10.0, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    exploration: float = Field(0.0, ge=0, le=1, description="ε: chance of a uniformly random action")
    exploration_end: float | None = Field(None, ge=0, le=1, description="ε decays linearly to this")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (logits divided by it)")
    ema: float | None = Field(None, ge=0, lt=1, description="decay of the EMA sampling model")
    checkpoint_every: int = Field(500, ge=1, description="a checkpoint every N steps ...")
    checkpoint_seconds: float = Field(60.0, gt=0, description="... or every T seconds, whichever comes first")
    log_every: int = Field(10, ge=1)
    inner_steps: int = Field(
        1,
        ge=1,
        description="f-TB updates per batch of new molecules: the first on the batch (with its replay "
        "share), the others on batches drawn from replay (off-policy)",
    )
    samplers: int = Field(
        1,
        ge=1,
        le=256,
        description="sampler processes (actors) drawing trajectories for one learner: 1 samples in the "
        "learner's process, in turn with training (bit-exact resume); N > 1 samples in N processes with "
        "a recent copy of the policy while the learner trains (off-policy by at most max_staleness steps)",
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="where samplers (samplers > 1) and docking scorers run: local processes, or Ray actors "
        "(pip install 'synflow[ray]'), on a cluster when ray_address is set",
    )
    ray_address: str | None = Field(
        None,
        description="an existing Ray cluster ('auto', 'ray://head:10001', 'host:6379'); unset: a local Ray "
        "instance started by the run (executor = ray only)",
    )
    max_staleness: int = Field(
        4,
        ge=0,
        description="samplers > 1: batches drawn with a policy more than this many learner steps old are "
        "dropped (counted in the metric stale_batches), never trained on",
    )
    sync_every: int = Field(
        1, ge=1, description="samplers > 1: the learner sends its policy to a sampler every N learner steps"
    )

    @model_validator(mode="after")
    def _sync_before_stale(self) -> TrainingConfig:
        if self.sync_every > max(self.max_staleness, 1):
            raise ValueError(
                f"sync_every ({self.sync_every}) must not exceed max_staleness ({self.max_staleness}): "
                "batches drawn with weights sent that rarely would all be dropped as stale"
            )
        return self


class MetricsConfig(_Section):
    mode_threshold: float = Field(0.9, description="reward at or above which a molecule can be a mode")
    mode_similarity: float = Field(0.5, description="Tanimoto below which a new mode is distinct")
    log_p_molecules: int = Field(
        16,
        ge=0,
        description="molecules of the batch whose sampling probability p(x) is estimated from backward "
        "trajectories at each metrics report (uniform backward policy only; 0: off)",
    )
    log_p_paths: int = Field(
        8, ge=1, description="backward trajectories drawn per molecule for that estimate"
    )


class RunConfig(_Section):
    preset: PresetName = Field(
        "sample",
        description="sample: exact sampling ∝ R; optimise: the best known sample-efficiency recipe. "
        "Explicit keys override the preset's values",
    )
    name: str = "run"
    reward: RewardConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    conditioning: ConditioningConfig = Field(default_factory=ConditioningConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "sample")
        if preset not in PRESETS:
            return data  # the field's own validation names the allowed values
        return merge_config(PRESETS[preset], data)

    @model_validator(mode="after")
    def _one_log_z_per_batch(self) -> RunConfig:
        if self.loss.log_z == "devgrad" and self.conditioning.beta_range is not None:
            lo, hi = self.conditioning.beta_range
            if lo != hi:
                raise _field_error(
                    "loss.log_z",
                    self.loss.log_z,
                    "'devgrad' estimates one log Z per batch, but log Z depends on β and "
                    "conditioning.beta_range draws a β per trajectory; use log_z = 'learned' "
                    "(conditioned on β)",
                )
        if self.loss.log_z == "devgrad" and self.conditioning.preferences is not None:
            raise _field_error(
                "loss.log_z",
                self.loss.log_z,
                "'devgrad' estimates one log Z per batch, but log Z depends on the preference "
                "w and conditioning.preferences draws a w per trajectory; use log_z = 'learned' "
                "(conditioned on w)",
            )
        return self

    @model_validator(mode="after")
    def _preference_components(self) -> RunConfig:
        preferences = self.conditioning.preferences
        if preferences is None:
            return self
        scored = [c.label for c in self.reward.components if c.role == "score"]
        names = preferences.components if preferences.components is not None else scored
        for name in names:
            if name not in scored:
                raise _field_error(
                    "conditioning.preferences.components",
                    name,
                    f"{name!r} is not a score component of the "
                    f"reward; score components: {', '.join(scored) or '(none)'}",
                )
        if len(set(names)) != len(names) or len(names) < 2:
            raise _field_error(
                "conditioning.preferences.components",
                names,
                "needs at least two distinct score components "
                f"(got {', '.join(names) or 'none'})",
            )
        return self

    @property
    def preference_components(self) -> list[str] | None:
        """The components a preference w spans, in order; None when the run is not preference-conditioned."""
        preferences = self.conditioning.preferences
        if preferences is None:
            return None
        if preferences.components is not None:
            return list(preferences.components)
        return [c.label for c in self.reward.components if c.role == "score"]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


class SamplingConfig(_Section):
    """A sampling job: draw ``count`` molecules from a trained run's final checkpoint."""

    count: int = Field(100, ge=1, le=100_000, description="molecules to draw")
    temperature: float = Field(1.0, gt=0, description="1 samples the trained distribution")
    preference: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        None,
        description="preference-conditioned runs: weight per preference component (≥ 0, not all zero; "
        "normalised to sum 1, components left out weigh 0); None: the reward's configured weights",
    )

    @field_validator("preference")
    @classmethod
    def _some_weight(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and not any(w > 0 for w in value.values()):
            raise ValueError("at least one weight must be positive")
        return value


def _field_error(path: str, value: Any, message: str) -> ValidationError:
    """A whole-config check's error located at the field it is about (``loss.log_z``), so the API
    and the CLI name that field rather than the config as a whole."""
    loc = tuple(int(p) if p.isdigit() else p for p in path.split("."))
    details = InitErrorDetails(type=PydanticCustomError("run_config", message), loc=loc, input=value)
    return ValidationError.from_exception_data("RunConfig", [details])


def merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, recursively for sections present in both."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


class ConfigError(ValueError):
    """A config that does not validate; ``errors`` holds (field path, message) pairs and the message
    names every failing field path (``training.steps: Input should be ...``)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))
        self.errors = errors

    @classmethod
    def from_validation(cls, error: ValidationError, prefix: str = "") -> ConfigError:
        return cls(
            [
                (prefix + (".".join(str(p) for p in item["loc"]) or "(root)"), item["msg"])
                for item in error.errors()
            ]
        )


def parse_run_config(data: Any) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError.from_validation(error) from None


def parse_sampling_config(data: Any) -> SamplingConfig:
    try:
        return SamplingConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError.from_validation(error) from None


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a RunConfig from ``.toml`` or ``.json``; ``overrides`` are merged on top (e.g. steps)."""
    path = Path(path)
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError([("(file)", f"{path}: {error}")]) from None
    return parse_run_config(merge_config(data, overrides or {}))
