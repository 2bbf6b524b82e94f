"""``RewardConfig``: the reward definition (the ``reward`` section of a RunConfig)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from synflow.rewards.components import ComponentConfig, DockingComponent
from synflow.rewards.results import DEFAULT_LOG_REWARD_FLOOR


class RewardConfig(BaseModel):
    """Components aggregated into a reward r in [0, 1]; the GFlowNet target is log R = β·log r.

    ``aggregation``: ``geometric`` (r = Π s_i^(w_i / Σw), zero if any score is zero) or
    ``arithmetic`` (r = Σ w_i s_i / Σw) over the ``score`` components; ``filter`` components
    multiply r afterwards. ``beta``: the reward exponent. ``log_reward_floor``: the lower clamp of
    log R, so r = 0 (invalid molecules, filtered ones) gives a finite log reward.
    ``budget``: the most unique molecules the oracle may score (PMO counts oracle calls this way).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    components: list[ComponentConfig] = Field(min_length=1)
    aggregation: Literal["geometric", "arithmetic"] = "geometric"
    beta: float = Field(1.0, gt=0.0, description="log R = beta * log r")
    log_reward_floor: float = Field(DEFAULT_LOG_REWARD_FLOOR, lt=0.0, description="min of log R")
    budget: int | None = Field(None, ge=1, description="max unique molecules scored (oracle calls)")

    @model_validator(mode="after")
    def _names_and_weights(self) -> RewardConfig:
        errors: list[InitErrorDetails] = []
        seen: dict[str, int] = {}
        for i, component in enumerate(self.components):
            if component.label in seen:
                errors.append(_error(("components", i, "name"), component.label,
                                     f"duplicate component name (also component {seen[component.label]});"
                                     " set a distinct `name`"))
            seen.setdefault(component.label, i)
            if not component.bounded and component.effective_transform() is None:
                message = "this component needs a transform"
                errors.append(_error(("components", i, "transform"), None, message))
        scored = [c for c in self.components if c.role == "score"]
        if scored and sum(c.weight for c in scored) <= 0.0:
            errors.append(_error(("components",), None, "the score components' weights sum to zero"))
        if errors:
            raise ValidationError.from_exception_data("RewardConfig", errors)
        return self

    @property
    def names(self) -> list[str]:
        return [c.label for c in self.components]

    def with_pose_dir(self, pose_dir: Path) -> RewardConfig:
        """A copy with ``pose_dir`` on each docking component that leaves it unset."""
        components = [
            c.model_copy(update={"pose_dir": pose_dir})
            if isinstance(c, DockingComponent) and c.pose_dir is None
            else c
            for c in self.components
        ]
        return self.model_copy(update={"components": components})

    def fingerprint(self) -> str:
        """A stable hash of the definition: scores cached under one fingerprint are reusable."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _error(loc: tuple[str | int, ...], value: Any, message: str) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("reward_config", message), loc=loc, input=value,
    )


def load_reward_config(path: str | Path) -> RewardConfig:
    """Read a reward definition from JSON or TOML; a whole RunConfig's ``reward`` section works too."""
    path = Path(path)
    text = path.read_text()
    data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    if isinstance(data, dict) and "components" not in data and isinstance(data.get("reward"), dict):
        data = data["reward"]
    return RewardConfig.model_validate(data)
