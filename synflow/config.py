"""``RunConfig``: the one typed description of a SynFlowNet run (JSON or TOML, API and CLI alike).

Every section forbids unknown keys, so a typo is an error that names its field path
(``loss.divergance: Extra inputs are not permitted``) instead of a silently ignored setting.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synflow.rewards import RewardConfig

__all__ = [
    "ConditioningConfig",
    "ConfigError",
    "EnvironmentConfig",
    "LossConfig",
    "MetricsConfig",
    "ModelConfig",
    "ReplayConfig",
    "RunConfig",
    "TrainingConfig",
    "load_run_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleConfig(_Section):
    """α over training steps (see ``synflow.losses.AlphaSchedule``)."""

    start: float
    end: float | None = None
    steps: int = Field(1, ge=1)
    kind: Literal["constant", "linear", "cosine"] = "linear"


class LossConfig(_Section):
    divergence: str = "reverse_kl"
    alpha: float | None = Field(None, description="α for divergence='alpha' (constant)")
    alpha_schedule: ScheduleConfig | None = Field(None, description="annealed α (divergence='alpha')")
    log_z: Literal["learned", "devgrad"] = "learned"
    log_z_lr: float = Field(0.05, gt=0)
    temper: float | None = Field(None, gt=0)
    backward_policy_weight: float = Field(1.0, ge=0, description="weight of −log P_B (maximum_likelihood)")

    @model_validator(mode="after")
    def _check_divergence(self) -> LossConfig:
        from synflow.losses import divergence_names

        if self.divergence not in divergence_names():
            raise ValueError(
                f"divergence: unknown {self.divergence!r}; one of {', '.join(divergence_names())}"
            )
        if self.divergence == "alpha" and self.alpha is None and self.alpha_schedule is None:
            raise ValueError("divergence 'alpha' needs loss.alpha or loss.alpha_schedule")
        return self


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
    blocks_per_template: int = Field(256, ge=1, description="k: blocks subsampled per template per step")

    @model_validator(mode="after")
    def _check_range(self) -> EnvironmentConfig:
        if self.min_reactions > self.max_reactions:
            raise ValueError("min_reactions must not exceed max_reactions")
        return self


class ConditioningConfig(_Section):
    """β conditioning: fixed (``reward.beta``) unless ``beta_range`` is given, then β ~ U(range)."""

    beta_range: tuple[float, float] | None = None
    thermometer_bins: int = Field(16, ge=2)


class ModelConfig(_Section):
    hidden: int = Field(128, ge=8)
    layers: int = Field(3, ge=1)
    conv: Literal["gine", "gatv2"] = "gine"
    block_hidden: int = Field(256, ge=8)


class ReplayConfig(_Section):
    capacity: int = Field(5000, ge=0)
    fraction: float = Field(0.0, ge=0, lt=1, description="share of each batch drawn from replay")
    sampling: Literal["uniform", "reward"] = "uniform"
    warmup: int = Field(64, ge=0, description="trajectories stored before replay is used")


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
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(10, ge=1)


class MetricsConfig(_Section):
    mode_threshold: float = Field(0.9, description="reward at or above which a molecule can be a mode")
    mode_similarity: float = Field(0.5, description="Tanimoto below which a new mode is distinct")


class RunConfig(_Section):
    name: str = "run"
    reward: RewardConfig
    loss: LossConfig = LossConfig()
    environment: EnvironmentConfig = EnvironmentConfig()
    conditioning: ConditioningConfig = ConditioningConfig()
    model: ModelConfig = ModelConfig()
    replay: ReplayConfig = ReplayConfig()
    training: TrainingConfig = TrainingConfig()
    metrics: MetricsConfig = MetricsConfig()

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


class ConfigError(ValueError):
    """A RunConfig that does not validate; the message names each failing field path."""


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(root)"
        lines.append(f"{path}: {item['msg']}")
    return "; ".join(lines)


def parse_run_config(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(error)) from None


def load_run_config(path: str | Path) -> RunConfig:
    """Read a RunConfig from ``.toml`` or ``.json``."""
    path = Path(path)
    text = path.read_text()
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return parse_run_config(data)
